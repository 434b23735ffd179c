//! Read-through cache in Redis for read-heavy values that may lag a little
//! (platform stats), invalidated on write, and bypassed, never an error,
//! when Redis is unreachable. Never for money: wallet balances are read
//! from Postgres (`ledger::wallet`), because an invalidation lost to a Redis
//! outage leaves a stale copy served after Redis returns, until its TTL.
//!
//! Invalidation is race-free by versioning rather than deleting: every name
//! has a version counter, and a value is stored tagged with the version that
//! was current before it was loaded. A writer bumps the version after its
//! commit, so a reader that loaded from the database just before that commit
//! can neither be served nor store its stale value afterwards (the store is
//! a Lua check-and-set against the version). If Redis is unreachable at the
//! moment of a bump, a value may stay stale until its TTL: TTLs are short.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::breaker::Breaker;
use crate::error::DomainResult;
use crate::keys::Namespace;

/// How long a cache command may take before the cache is bypassed.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed command, reads skip Redis this long (then one tries it),
/// so an outage does not cost every read a timeout.
const COOLDOWN: Duration = Duration::from_secs(1);

/// Stores `ARGV[2]` (tagged `ARGV[1]`) only while the version is still `ARGV[1]`.
const STORE: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
if current == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
end
return 0
";

/// Bumps the version; it outlives every value stored under the old one.
const BUMP: &str = r"
local v = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return v
";

/// The cache, cheap to clone.
#[derive(Clone)]
pub struct Cache {
    redis: ConnectionManager,
    ns: Namespace,
    store: redis::Script,
    bump: redis::Script,
    breaker: Breaker,
}

impl Cache {
    /// A cache over `redis` with names under `ns`.
    pub fn new(redis: ConnectionManager, ns: Namespace) -> Self {
        Self {
            redis,
            ns,
            store: redis::Script::new(STORE),
            bump: redis::Script::new(BUMP),
            breaker: Breaker::new("redis_cache", 1, COOLDOWN),
        }
    }

    fn keys(&self, name: &str) -> (String, String) {
        (
            self.ns.key(&format!("cache:{name}:v")),
            self.ns.key(&format!("cache:{name}")),
        )
    }

    /// The cached value of `name`, or `load()`'s, stored for `ttl`.
    pub async fn get_or_set<T, F, Fut>(&self, name: &str, ttl: Duration, load: F) -> DomainResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = DomainResult<T>>,
    {
        if !self.breaker.allow() {
            metrics::counter!("giftdrop_cache_requests_total", "result" => "bypass").increment(1);
            return load().await;
        }
        let (version_key, value_key) = self.keys(name);
        let mut redis = self.redis.clone();
        let read = self
            .breaker
            .call(
                COMMAND_TIMEOUT,
                redis::cmd("MGET")
                    .arg(&version_key)
                    .arg(&value_key)
                    .query_async::<(Option<String>, Option<String>)>(&mut redis),
            )
            .await;
        let version = match read {
            Ok((version, cached)) => {
                let version = version.unwrap_or_else(|| "0".to_owned());
                if let Some(value) = cached
                    .as_deref()
                    .and_then(|c| c.split_once(':'))
                    .filter(|(tag, _)| *tag == version)
                    .and_then(|(_, json)| serde_json::from_str::<T>(json).ok())
                {
                    metrics::counter!("giftdrop_cache_requests_total", "result" => "hit")
                        .increment(1);
                    return Ok(value);
                }
                metrics::counter!("giftdrop_cache_requests_total", "result" => "miss").increment(1);
                Some(version)
            }
            Err(error) => {
                metrics::counter!("giftdrop_cache_requests_total", "result" => "bypass")
                    .increment(1);
                tracing::warn!(name, %error, "cache unavailable, reading through");
                None
            }
        };
        let value = load().await?;
        if let (Some(version), Ok(json)) = (version, serde_json::to_string(&value)) {
            let stored = self
                .breaker
                .call(
                    COMMAND_TIMEOUT,
                    self.store
                        .key(&version_key)
                        .key(&value_key)
                        .arg(&version)
                        .arg(json)
                        .arg(ttl.as_secs().max(1))
                        .invoke_async::<i64>(&mut redis),
                )
                .await;
            if let Err(error) = stored {
                tracing::warn!(name, %error, "could not store a cache value");
            }
        }
        Ok(value)
    }

    /// Makes every value of `name` stored so far unservable. Call after the
    /// commit that changed it; failures are logged, not returned (the value
    /// then expires with its TTL).
    pub async fn invalidate(&self, name: &str, ttl: Duration) {
        let (version_key, _) = self.keys(name);
        let mut redis = self.redis.clone();
        let bumped = self
            .breaker
            .call(
                COMMAND_TIMEOUT,
                self.bump
                    .key(&version_key)
                    .arg(ttl.as_secs().max(1) * 2 + 1)
                    .invoke_async::<i64>(&mut redis),
            )
            .await;
        if let Err(error) = bumped {
            tracing::warn!(
                name,
                %error,
                "could not invalidate a cache value; it expires with its TTL"
            );
        }
    }
}
