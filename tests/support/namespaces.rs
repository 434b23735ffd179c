//! Each test's own Redis namespace (`test:{uuid}:`), its apalis queues
//! (`{namespace}jobs:{kind}`, keys as apalis-redis names them), and its
//! removal: only keys under the namespace are ever read or deleted
//! (`SCAN MATCH {namespace}*`), and the namespace's entries in apalis's one
//! global key, never the rest of a Redis that parallel tests and other
//! projects share.

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::{harness, redis_url};

/// A Redis namespace of the test's own, whose keys are deleted when the
/// test ends.
pub fn fresh_namespace() -> String {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    harness::scope().namespace(&prefix);
    prefix
}

/// A connection to the test Redis.
pub async fn redis_connection() -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(redis_url()).map_err(|err| format!("Redis URL: {err}"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|err| format!("cannot connect to Redis: {err}"))
}

/// Every key matching `pattern`.
async fn scan(redis: &mut MultiplexedConnection, pattern: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .map_err(|err| format!("SCAN MATCH {pattern}: {err}"))?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// `prefix` with the glob characters of `SCAN MATCH` escaped.
fn glob_escaped(prefix: &str) -> String {
    prefix.chars().fold(String::new(), |mut escaped, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
        escaped
    })
}

/// Every key of `namespace`.
pub async fn keys(
    redis: &mut MultiplexedConnection,
    namespace: &str,
) -> Result<Vec<String>, String> {
    scan(redis, &format!("{}*", glob_escaped(namespace))).await
}

/// The keys of `namespace`'s job queues.
async fn queue_keys(
    redis: &mut MultiplexedConnection,
    namespace: &str,
) -> Result<Vec<String>, String> {
    scan(redis, &format!("{}jobs:*", glob_escaped(namespace))).await
}

/// A job of a queue that is not finished.
pub struct Job {
    queue: String,
    id: String,
    state: &'static str,
    /// Whether a worker may take it now (not a retry scheduled later).
    pub due: bool,
}

/// Every job of `namespace`'s queues that is waiting, scheduled (retries
/// too) or running.
pub async fn jobs(redis: &mut MultiplexedConnection, namespace: &str) -> Result<Vec<Job>, String> {
    let failed = |err: redis::RedisError| format!("reading the queues of {namespace}: {err}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut found = Vec::new();
    let mut add = |queue: &str, state, due, ids: Vec<String>| {
        found.extend(ids.into_iter().map(|id| Job {
            queue: queue.to_owned(),
            id,
            state,
            due,
        }));
    };
    for key in queue_keys(redis, namespace).await? {
        if let Some(queue) = key.strip_suffix(":active") {
            add(
                queue,
                "waiting",
                true,
                redis.lrange(&key, 0, -1).await.map_err(failed)?,
            );
        } else if let Some(queue) = key.strip_suffix(":scheduled") {
            let due: Vec<String> = redis.zrangebyscore(&key, 0, now).await.map_err(failed)?;
            let later: Vec<String> = redis
                .zrangebyscore(&key, format!("({now}"), "+inf")
                .await
                .map_err(failed)?;
            add(queue, "scheduled", true, due);
            add(queue, "scheduled later", false, later);
        } else if let Some(at) = key.rfind(":inflight") {
            add(
                &key[..at],
                "running",
                true,
                redis.smembers(&key).await.map_err(failed)?,
            );
        }
    }
    Ok(found)
}

/// `job` with its status, attempts, last result and payload.
pub async fn describe(redis: &mut MultiplexedConnection, job: &Job) -> Result<String, String> {
    let failed = |err: redis::RedisError| format!("reading job {}: {err}", job.id);
    let meta: Vec<(String, String)> = redis
        .hgetall(format!("{}:meta:{}", job.queue, job.id))
        .await
        .map_err(failed)?;
    let data: Option<Vec<u8>> = redis
        .hget(format!("{}:data", job.queue), &job.id)
        .await
        .map_err(failed)?;
    let data: String = data
        .map(|bytes| String::from_utf8_lossy(&bytes).chars().take(300).collect())
        .unwrap_or_default();
    let meta = meta
        .iter()
        .map(|(field, value)| format!("{field}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "{}: job {} {} ({meta}): {data}",
        job.queue, job.id, job.state
    ))
}

/// Puts the jobs that stopped workers had taken back in their queues, as
/// apalis does for a worker silent for the orphan window (a minute), at
/// once: every worker of the namespace has stopped.
pub async fn requeue_taken(
    redis: &mut MultiplexedConnection,
    namespace: &str,
) -> Result<(), String> {
    let failed = |err: redis::RedisError| format!("requeueing the jobs of {namespace}: {err}");
    for key in queue_keys(redis, namespace).await? {
        let Some(at) = key.rfind(":inflight") else {
            continue;
        };
        let ids: Vec<String> = redis.smembers(&key).await.map_err(failed)?;
        if ids.is_empty() {
            continue;
        }
        let () = redis::pipe()
            .atomic()
            .rpush(format!("{}:active", &key[..at]), &ids)
            .ignore()
            .del(&key)
            .ignore()
            .query_async(redis)
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// The sorted set in which apalis-redis registers every queue (by its
/// workers key) it ever had a worker for: outside any namespace, so only its
/// members naming the namespace's queues are removed.
const APALIS_QUEUES: &str = "core:apalis:queues:list";

/// Removes the namespace's queues from [`APALIS_QUEUES`].
async fn unregister_queues(
    redis: &mut MultiplexedConnection,
    namespace: &str,
) -> Result<(), String> {
    let failed = |err: redis::RedisError| format!("{APALIS_QUEUES} members of {namespace}: {err}");
    let pattern = format!("{}*", glob_escaped(namespace));
    let mut members: Vec<String> = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<(String, f64)>) = redis::cmd("ZSCAN")
            .arg(APALIS_QUEUES)
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .map_err(failed)?;
        members.extend(batch.into_iter().map(|(member, _)| member));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if !members.is_empty() {
        let () = redis.zrem(APALIS_QUEUES, &members).await.map_err(failed)?;
    }
    Ok(())
}

/// Deletes every key of `namespace` (and its queues' entries in apalis's
/// global list), and checks that none is left.
pub async fn delete_namespace(
    redis: &mut MultiplexedConnection,
    namespace: &str,
) -> Result<(), String> {
    unregister_queues(redis, namespace).await?;
    for _ in 0..3 {
        let keys = keys(redis, namespace).await?;
        if keys.is_empty() {
            return Ok(());
        }
        for chunk in keys.chunks(500) {
            let () = redis
                .unlink(chunk)
                .await
                .map_err(|err| format!("deleting keys of {namespace}: {err}"))?;
        }
    }
    let left = keys(redis, namespace).await?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} keys of {namespace} came back: {left:?}",
            left.len()
        ))
    }
}
