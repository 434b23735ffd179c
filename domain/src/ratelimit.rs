//! Sliding-window rate limits counted in Redis, shared by every process.
//!
//! Each (operation, subject) pair is a sorted set of attempt timestamps
//! (Redis server time, so process clocks do not matter). One Lua script
//! drops expired attempts, counts, and records the new attempt only when it
//! is within the limit, atomically.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::breaker::Breaker;
use crate::error::{DomainError, DomainResult};
use crate::keys::Namespace;

/// At most `max` attempts per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed in one window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

/// Every configured limit by operation name (`RATE_LIMITS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits(Arc<HashMap<String, Limit>>);

/// How long the limiter waits for Redis before allowing the attempt.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// The defaults of FLOWS.md §3.
pub const DEFAULT_RATE_LIMITS: &str =
    "topup=50/3600,payout=20/3600,purchase=100/3600,attempt=30/60,join=30/60,login=10/300";

impl RateLimits {
    /// Parses `op=max/seconds,...`; operations not named keep their default.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut limits = Self::parse_only(DEFAULT_RATE_LIMITS)?;
        limits.extend(Self::parse_only(spec)?);
        Ok(Self(Arc::new(limits)))
    }

    fn parse_only(spec: &str) -> Result<HashMap<String, Limit>, String> {
        let mut map = HashMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("rate limit {part:?} is not op=max/seconds");
            let (op, rule) = part.split_once('=').ok_or_else(bad)?;
            let (max, secs) = rule.split_once('/').ok_or_else(bad)?;
            let max: u32 = max.trim().parse().map_err(|_| bad())?;
            let secs: u64 = secs.trim().parse().map_err(|_| bad())?;
            if max == 0 || secs == 0 || op.trim().is_empty() {
                return Err(bad());
            }
            map.insert(
                op.trim().to_owned(),
                Limit {
                    max,
                    window: Duration::from_secs(secs),
                },
            );
        }
        Ok(map)
    }

    /// The limit of `op`, if one is configured.
    pub fn get(&self, op: &str) -> Option<Limit> {
        self.0.get(op).copied()
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::parse(DEFAULT_RATE_LIMITS).unwrap_or_else(|_| Self(Arc::default()))
    }
}

const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
";

/// Checks and counts attempts against [`RateLimits`].
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    ns: Namespace,
    limits: RateLimits,
    script: Script,
    breaker: Breaker,
}

impl RateLimiter {
    /// A limiter over `redis`, keys under `ns`.
    pub fn new(redis: ConnectionManager, ns: Namespace, limits: RateLimits) -> Self {
        Self {
            redis,
            ns,
            limits,
            script: Script::new(SLIDING_WINDOW),
            // While Redis is failing, attempts are allowed without asking
            // it, rather than each waiting for a timeout.
            breaker: Breaker::new("redis_rate_limiter", 1, Duration::from_secs(1)),
        }
    }

    /// Counts one attempt of `op` by `subject` (a user id, `email:..`,
    /// `ip:..`); `RateLimited` when the window is full.
    ///
    /// If Redis cannot be reached the attempt is allowed and the failure is
    /// logged: a limiter outage must not lock everyone out.
    pub async fn check(&self, op: &str, subject: &str) -> DomainResult<()> {
        let Some(limit) = self.limits.get(op) else {
            return Ok(());
        };
        if !self.breaker.allow() {
            return Ok(());
        }
        let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
        let member = uuid::Uuid::new_v4().to_string();
        let mut redis = self.redis.clone();
        let mut invocation = self.script.key(self.ns.key(&format!("rl:{op}:{subject}")));
        invocation.arg(window_ms).arg(limit.max).arg(member);
        let result = self
            .breaker
            .call(COMMAND_TIMEOUT, invocation.invoke_async::<u64>(&mut redis))
            .await;
        match result {
            Ok(0) => Ok(()),
            Ok(wait_ms) => {
                metrics::counter!("giftdrop_rate_limit_rejections_total", "op" => op.to_owned())
                    .increment(1);
                Err(DomainError::RateLimited {
                    retry_after_seconds: wait_ms.div_ceil(1000),
                })
            }
            Err(err) => {
                tracing::warn!(error = %err, op, "rate limiter unavailable, allowing the attempt");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_over_the_defaults() {
        let limits = RateLimits::parse("login=3/60, topup=1/1").expect("valid spec");
        assert_eq!(
            limits.get("login"),
            Some(Limit {
                max: 3,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(limits.get("topup").map(|l| l.max), Some(1));
        assert_eq!(limits.get("join").map(|l| l.max), Some(30), "defaults stay");
        assert_eq!(limits.get("nope"), None);
    }

    #[test]
    fn malformed_limits_are_refused() {
        for bad in [
            "login",
            "login=3",
            "login=x/60",
            "login=0/60",
            "login=3/0",
            "=3/60",
        ] {
            assert!(RateLimits::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
