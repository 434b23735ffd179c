//! What `APP_ENV=production` refuses: settings that are convenient on a
//! laptop and dangerous on the internet. Every refusal is found before any
//! connection is made, and all of them are reported at once, so an operator
//! fixes the configuration in one go.

use secrecy::{ExposeSecret, SecretString};

use super::{Config, PaymentProvider};

/// Every secret value written anywhere in this repository: compose
/// defaults, scripts, tests, benchmarks, the development card key. Anyone
/// can read them, so none of them protects anything in production. A new
/// published default belongs here (a test checks the compose file's).
pub const PUBLISHED_SECRETS: &[&str] = &[
    // docker-compose.yml and scripts/up defaults
    "change-me-in-production-0123456789",
    "change-me-in-production-card-secret",
    "change-me-please",
    // the development card key (src/app/services.rs)
    "giftdrop-development-card-secret",
    // tests
    "test-secret-0123456789-0123456789",
    "test-card-secret-0123456789",
    "correct-horse-battery",
    "sk_test_4f1d2c3b5a6978",
    "whsec_9a8b7c6d5e4f3210",
    "whsec-test",
    // BENCHMARKS.md and bench/
    "bench-secret-0123456789abcdef",
    "admin-password-1",
    "bench-password-1",
];

/// Words that mark a value as a placeholder someone forgot to replace.
const PLACEHOLDERS: &[&str] = &["change-me", "changeme", "change_me"];

/// Shortest `JWT_SECRET` production accepts: HS256 keys of 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// True when `value` is published in this repository or a placeholder.
pub fn is_published_secret(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PUBLISHED_SECRETS.contains(&value) || PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

/// The secret's value; an empty one counts as unset.
fn present(secret: Option<&SecretString>) -> Option<&str> {
    secret
        .map(ExposeSecret::expose_secret)
        .filter(|s| !s.is_empty())
}

/// What is wrong with `config` for production, one sentence each; empty
/// when it may start. `serving`: this process answers HTTP.
pub fn refusals(config: &Config, serving: bool) -> Vec<String> {
    let mut refused = Vec::new();
    if config.payment_provider == PaymentProvider::Sandbox {
        refused.push(
            "PAYMENT_PROVIDER=sandbox is refused: its /sandbox routes let anyone credit any \
             wallet and make every payment fail; set PAYMENT_PROVIDER=http"
                .to_owned(),
        );
    }
    match present(config.jwt_secret.as_ref()) {
        None => refused.push(format!(
            "JWT_SECRET must be set (at least {MIN_JWT_SECRET_BYTES} bytes, shared by every API process)"
        )),
        Some(s) if s.len() < MIN_JWT_SECRET_BYTES => refused.push(format!(
            "JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"
        )),
        Some(_) => {}
    }
    let secrets = [
        ("JWT_SECRET", config.jwt_secret.as_ref()),
        ("CARD_SECRET", config.card_secret.as_ref()),
        (
            "PAYMENT_WEBHOOK_SECRET",
            config.payment_webhook_secret.as_ref(),
        ),
        (
            "PAYMENT_PROVIDER_SECRET",
            config.payment_provider_secret.as_ref(),
        ),
        ("ADMIN_PASSWORD", config.admin_password.as_ref()),
        ("METRICS_TOKEN", config.metrics_token.as_ref()),
    ];
    for (name, secret) in secrets {
        if present(secret).is_some_and(is_published_secret) {
            refused.push(format!(
                "{name} is a value published in the giftdrop repository (or a placeholder): \
                 generate a new one, e.g. `openssl rand -hex 32`"
            ));
        }
    }
    if serving && config.metrics_addr.is_none() && present(config.metrics_token.as_ref()).is_none()
    {
        refused.push(
            "/metrics would be public on HTTP_ADDR: set METRICS_TOKEN (a bearer token the \
             scraper sends) or METRICS_ADDR (a listener only your network reaches)"
                .to_owned(),
        );
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::{PUBLISHED_SECRETS, is_published_secret};

    #[test]
    fn published_values_and_placeholders_are_recognised_and_others_are_not() {
        for value in PUBLISHED_SECRETS {
            assert!(is_published_secret(value), "{value}");
        }
        assert!(is_published_secret("please-CHANGEME-now"));
        assert!(!is_published_secret(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c"
        ));
    }
}
