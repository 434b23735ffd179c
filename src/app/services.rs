//! The domain services of a process, from its configuration: settings
//! that can be wrong are checked ([`check`]) before any connection is made
//! ([`connect`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use giftdrop_domain::cache::Cache;
use giftdrop_domain::giftcard::pin::CardSecrets;
use giftdrop_domain::giveaway::verify::SocialVerifier;
use giftdrop_domain::identity::TokenIssuer;
use giftdrop_domain::keys::Namespace;
use giftdrop_domain::outbox::OutboxSignal;
use giftdrop_domain::payments::Payments;
use giftdrop_domain::payments::http::{HttpProvider, HttpProviderConfig};
use giftdrop_domain::payments::sandbox::{KnobSettings, SandboxKnobs, SandboxProvider};
use giftdrop_domain::pubsub::Hub;
use giftdrop_domain::ratelimit::{RateLimiter, RateLimits};
use giftdrop_domain::{Services, Settings};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PaymentProvider};

/// The services' settings that were checked before connecting.
pub(super) struct Checked {
    payments: Payments,
    card_secrets: CardSecrets,
}

/// Checks the payment provider's and the pin keys' settings; the sandbox
/// provider's pages are served at `listening` unless `PUBLIC_URL` says.
pub(super) fn check(config: &Config, listening: Option<SocketAddr>) -> anyhow::Result<Checked> {
    Ok(Checked {
        payments: payments(config, public_url(config, listening))?,
        card_secrets: card_secrets(config)?,
    })
}

/// Connects to Postgres and Redis and builds the services; the pub/sub
/// hub stops on `shutdown`. Also the count of statements run on the pool.
pub(super) async fn connect(
    config: &Config,
    checked: Checked,
    rate_limits: RateLimits,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Services, crate::db::StatementCount)> {
    let Checked {
        payments,
        card_secrets,
    } = checked;
    let pooling = crate::db::Pooling::from_pgbouncer(config.database_pgbouncer);
    let (db, db_statements) = crate::db::connect_counted(&config.database_url, pooling).await?;
    let redis_client =
        redis::Client::open(config.redis_url.as_str()).context("REDIS_URL is invalid")?;
    let redis = redis_connection(&redis_client).await?;
    let ns = Namespace::new(config.redis_namespace.clone());
    let hub = Hub::start(redis_client, ns.clone(), shutdown.child_token());
    let jwt_secret = secret_or_random(config.jwt_secret.as_ref(), "JWT_SECRET");
    let services = Services {
        db,
        redis: redis.clone(),
        hub,
        outbox: OutboxSignal::default(),
        tokens: TokenIssuer::new(
            &jwt_secret,
            chrono::Duration::hours(i64::from(config.jwt_ttl_hours)),
        ),
        limiter: RateLimiter::new(redis.clone(), ns.clone(), rate_limits),
        cache: Cache::new(redis, ns.clone()),
        payments,
        card_secrets,
        wallet_ids: giftdrop_domain::ledger::WalletIds::default(),
        on_sale: giftdrop_domain::giftcard::products::OnSale::default(),
        winner_reads: std::sync::Arc::new(giftdrop_domain::coalesce::Coalescer::new("winners")),
        verifier: social_verifier(config)?,
        budget: giftdrop_domain::giveaway::attempt::Budget::default(),
        settings: Settings {
            currency: config.platform_currency.clone(),
            service_rate_bps: config.service_rate_bps,
            deposit_fee_bps: config.deposit_fee_bps,
            topup_max: giftdrop_domain::money::Amount::new(config.topup_max_amount)
                .context("TOPUP_MAX_AMOUNT")?,
        },
        ns,
    };
    Ok((services, db_statements))
}

async fn redis_connection(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .context("failed to connect to Redis")
}

fn secret_or_random(value: Option<&SecretString>, name: &str) -> SecretString {
    match value {
        Some(secret) if !secret.expose_secret().is_empty() => secret.clone(),
        _ => {
            tracing::warn!("{name} is not set: using a random secret for this process only");
            SecretString::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))
        }
    }
}

/// The public base URL: `PUBLIC_URL`, else the listener's port on localhost.
fn public_url(config: &Config, listening: Option<SocketAddr>) -> String {
    if let Some(url) = config.public_url.as_deref().filter(|u| !u.is_empty()) {
        return url.trim_end_matches('/').to_owned();
    }
    let addr = listening.unwrap_or(config.http_addr);
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// The social verifier `SOCIAL_VERIFIER_URL` names; without one, everyone
/// is verified at once, which production refuses.
fn social_verifier(config: &Config) -> anyhow::Result<SocialVerifier> {
    match config
        .social_verifier_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(url) => SocialVerifier::http(url.to_owned(), Duration::from_secs(10)),
        None if config.is_production() => {
            anyhow::bail!("SOCIAL_VERIFIER_URL must be set in production")
        }
        None => {
            tracing::warn!("SOCIAL_VERIFIER_URL is not set: every participant is verified at once");
            Ok(SocialVerifier::Instant)
        }
    }
}

/// The pin keys: `CARD_SECRET`, required in production. Elsewhere a fixed
/// development key keeps cards redeemable across restarts.
fn card_secrets(config: &Config) -> anyhow::Result<CardSecrets> {
    match &config.card_secret {
        Some(secret) if secret.expose_secret().len() >= 16 => Ok(CardSecrets::new(secret)),
        Some(_) => anyhow::bail!("CARD_SECRET must be at least 16 characters"),
        None if config.is_production() => anyhow::bail!("CARD_SECRET must be set in production"),
        None => {
            tracing::warn!(
                "CARD_SECRET is not set: using the development key (never in production)"
            );
            Ok(CardSecrets::new(&SecretString::from(
                "giftdrop-development-card-secret".to_owned(),
            )))
        }
    }
}

fn payments(config: &Config, public_url: String) -> anyhow::Result<Payments> {
    let timeout = Duration::from_millis(config.payment_provider_timeout_ms.max(1));
    let cooldown = Duration::from_millis(config.payment_breaker_cooldown_ms.max(1));
    match config.payment_provider {
        PaymentProvider::Sandbox => {
            let knobs = Arc::new(SandboxKnobs::new(KnobSettings {
                latency_ms: config.sandbox_latency_ms,
                failure_percent: config.sandbox_failure_percent,
                // Set while it runs (`POST /sandbox/settings`).
                lost_answer_percent: 0,
            }));
            Ok(Payments::new(
                Arc::new(SandboxProvider {
                    base_url: public_url,
                    knobs: knobs.clone(),
                }),
                secret_or_random(
                    config.payment_webhook_secret.as_ref(),
                    "PAYMENT_WEBHOOK_SECRET",
                ),
                Some(knobs),
                timeout,
                cooldown,
            ))
        }
        PaymentProvider::Http => {
            let required = |value: Option<&SecretString>, name: &str| {
                value
                    .filter(|s| !s.expose_secret().is_empty())
                    .cloned()
                    .with_context(|| format!("{name} must be set when PAYMENT_PROVIDER=http"))
            };
            let base_url = config
                .payment_provider_url
                .clone()
                .filter(|u| !u.is_empty())
                .context("PAYMENT_PROVIDER_URL must be set when PAYMENT_PROVIDER=http")?;
            let provider = HttpProvider::new(HttpProviderConfig {
                base_url,
                secret: required(
                    config.payment_provider_secret.as_ref(),
                    "PAYMENT_PROVIDER_SECRET",
                )?,
                connect_timeout: timeout.min(Duration::from_secs(3)),
                timeout,
            })
            .context("failed to build the payment provider client")?;
            Ok(Payments::new(
                Arc::new(provider),
                required(
                    config.payment_webhook_secret.as_ref(),
                    "PAYMENT_WEBHOOK_SECRET",
                )?,
                None,
                timeout,
                cooldown,
            ))
        }
    }
}
