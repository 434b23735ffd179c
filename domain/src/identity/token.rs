//! Access tokens: HS256 JWTs carrying only the user id. Roles are never
//! trusted from a token; they are read from the database on every request.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
    exp: i64,
}

/// Tolerance for clocks that disagree between the processes that issue
/// and verify tokens, seconds.
const LEEWAY_SECS: u64 = 5;

/// A token that verified: whose it is, and until when it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user it was issued to.
    pub user_id: Uuid,
    /// The instant the token stops being accepted (its expiry, plus the
    /// clock leeway): a connection authorized by it must stop there too.
    pub valid_until: DateTime<Utc>,
}

/// Issues and verifies access tokens with one secret. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    inner: std::sync::Arc<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `secret`, tokens valid for `lifetime`.
    pub fn new(secret: &SecretString, lifetime: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            inner: std::sync::Arc::new(Keys {
                encoding: EncodingKey::from_secret(bytes),
                decoding: DecodingKey::from_secret(bytes),
                validation,
                lifetime,
            }),
        }
    }

    /// A token for `user_id` and the instant it expires.
    pub fn issue(&self, user_id: Uuid) -> DomainResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires_at = now + self.inner.lifetime;
        let claims = Claims {
            sub: user_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|e| anyhow::Error::new(e).context("failed to sign an access token"))?;
        Ok((token, expires_at))
    }

    /// The user id of a valid, unexpired token; `Unauthenticated` otherwise.
    pub fn verify(&self, token: &str) -> DomainResult<Uuid> {
        self.check(token).map(|verified| verified.user_id)
    }

    /// Whose a valid, unexpired token is and until when it is accepted;
    /// `Unauthenticated` otherwise.
    pub fn check(&self, token: &str) -> DomainResult<Verified> {
        let claims = decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map_err(|_| DomainError::Unauthenticated)?
            .claims;
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let valid_until = DateTime::from_timestamp(claims.exp.saturating_add(leeway), 0)
            .ok_or(DomainError::Unauthenticated)?;
        Ok(Verified {
            user_id: claims.sub,
            valid_until,
        })
    }

    /// Parses an `Authorization` value (`Bearer <token>`) into a user id.
    pub fn verify_bearer(&self, header: &str) -> DomainResult<Uuid> {
        self.check_bearer(header).map(|verified| verified.user_id)
    }

    /// [`TokenIssuer::check`] of an `Authorization` value (`Bearer <token>`).
    pub fn check_bearer(&self, header: &str) -> DomainResult<Verified> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(DomainError::Unauthenticated)?;
        self.check(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &str, lifetime: Duration) -> TokenIssuer {
        TokenIssuer::new(&SecretString::from(secret.to_owned()), lifetime)
    }

    #[test]
    fn a_token_verifies_with_its_own_secret_only() {
        let id = Uuid::new_v4();
        let a = issuer("secret-a-0123456789", Duration::hours(24));
        let (token, _) = a.issue(id).expect("signing works");
        assert_eq!(a.verify(&token).ok(), Some(id));
        assert_eq!(a.verify_bearer(&format!("Bearer {token}")).ok(), Some(id));
        let b = issuer("secret-b-0123456789", Duration::hours(24));
        assert!(matches!(
            b.verify(&token),
            Err(DomainError::Unauthenticated)
        ));
        assert!(
            a.verify_bearer(&token).is_err(),
            "the Bearer prefix is required"
        );
    }

    #[test]
    fn a_token_is_accepted_until_its_expiry_and_the_leeway() {
        let a = issuer("secret-a-0123456789", Duration::hours(1));
        let (token, expires_at) = a.issue(Uuid::new_v4()).expect("signing works");
        let verified = a.check(&token).expect("valid");
        assert_eq!(
            verified.valid_until.timestamp(),
            expires_at.timestamp() + 5,
            "the expiry, to the second, plus the leeway"
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let a = issuer("secret-a-0123456789", Duration::seconds(-60));
        let (token, _) = a.issue(Uuid::new_v4()).expect("signing works");
        assert!(matches!(
            a.verify(&token),
            Err(DomainError::Unauthenticated)
        ));
    }
}
