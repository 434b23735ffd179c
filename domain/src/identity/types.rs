//! Validated identity values: an invalid email, password or display name
//! cannot exist past these constructors.

use secrecy::{ExposeSecret, SecretString};

use crate::error::{DomainError, DomainResult};

/// A normalized (trimmed, lowercase) email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates and normalizes `raw`; `field` names the input on failure.
    pub fn parse(raw: &str, field: &str) -> DomainResult<Self> {
        let email = raw.trim().to_lowercase();
        let bad = || DomainError::bad_input(field, "is not a valid email address");
        let blank_or_control = |c: char| c.is_whitespace() || c.is_control();
        if !(3..=254).contains(&email.len()) || email.chars().any(blank_or_control) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@');
        if local.is_empty() || !domain_ok {
            return Err(bad());
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the length rules, kept secret.
pub struct Password(SecretString);

impl Password {
    /// Minimum length in characters (FLOWS.md §2 via the contract).
    pub const MIN_CHARS: usize = 10;
    /// Maximum length, so hashing cost stays bounded.
    pub const MAX_CHARS: usize = 256;

    /// Validates `raw`; `field` names the input on failure.
    pub fn parse(raw: &str, field: &str) -> DomainResult<Self> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(DomainError::bad_input(
                field,
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(DomainError::bad_input(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The secret itself, for hashing only.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A trimmed display name of 1-100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Validates `raw`; `field` names the input on failure.
    pub fn parse(raw: &str, field: &str) -> DomainResult<Self> {
        let name = raw.trim();
        let n = name.chars().count();
        if n == 0 || n > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::bad_input(
                field,
                "must be 1-100 printable characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_validated() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ", "email")
                .map(|e| e.0)
                .ok(),
            Some("ada@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@x.io",
            "a@b@c.io",
            "a@.io",
            "a\u{0}da@example.com",
            "ada@exa\u{7}mple.com",
        ] {
            assert!(Email::parse(bad, "email").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert!(Password::parse("123456789", "password").is_err());
        assert!(Password::parse("1234567890", "password").is_ok());
        assert!(Password::parse(&"x".repeat(257), "password").is_err());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Ada Lovelace ", "n").map(|n| n.0).ok(),
            Some("Ada Lovelace".to_owned())
        );
        assert!(DisplayName::parse("   ", "n").is_err());
        assert!(DisplayName::parse(&"x".repeat(101), "n").is_err());
    }
}
