//! Argon2id password hashing, run off the async executor.

use argon2::password_hash::{PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

use super::types::Password;
use crate::error::DomainResult;

/// Hashes `password` with Argon2id and a fresh salt (PHC string).
pub async fn hash(password: &Password) -> DomainResult<String> {
    let secret = SecretString::from(password.expose().to_owned());
    let hashed = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(secret.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .map_err(|e| anyhow::Error::new(e).context("password hashing task failed"))??;
    Ok(hashed)
}

/// True when `candidate` matches the PHC string `stored`. A malformed stored
/// hash never matches. With no stored hash (unknown account) a decoy hash is
/// checked, so a login takes as long whether or not the account exists.
pub async fn verify(candidate: &str, stored: Option<&str>) -> DomainResult<bool> {
    let candidate = SecretString::from(candidate.to_owned());
    let stored = stored.map(str::to_owned);
    let ok = tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| decoy_hash().to_owned());
        let matches = PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(candidate.expose_secret().as_bytes(), &parsed)
                .is_ok()
        });
        known && matches
    })
    .await
    .map_err(|e| anyhow::Error::new(e).context("password verification task failed"))?;
    Ok(ok)
}

/// A hash of a random password, computed once per process.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let random = uuid::Uuid::new_v4().to_string();
        Argon2::default()
            .hash_password(random.as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
