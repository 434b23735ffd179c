//! Platform facts a front end needs before anything else.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::Settings;

use crate::auth::services;

/// The platform's currency, rates and clock.
pub struct Platform(Settings);

#[Object]
impl Platform {
    /// ISO 4217 code of the one platform currency, e.g. NGN.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    /// Default platform service rate in basis points (500 = 5%).
    async fn service_rate_bps(&self) -> u32 {
        self.0.service_rate_bps
    }

    /// Payment provider deposit fee in basis points, charged on top-ups.
    async fn deposit_fee_bps(&self) -> u32 {
        self.0.deposit_fee_bps
    }

    async fn server_time(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Platform queries.
#[derive(Default)]
pub struct PlatformQuery;

#[Object]
impl PlatformQuery {
    async fn platform(&self, ctx: &Context<'_>) -> Result<Platform> {
        Ok(Platform(services(ctx)?.settings.clone()))
    }
}
