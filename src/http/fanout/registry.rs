//! Where shared executions are listed while they may be joined, and the
//! key subscribers share one under.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use giftdrop_graphql::auth::Auth;

/// The runtime the tasks of shared executions run on: never the sockets'
/// own. There, the task that takes a new winner in would wait behind every
/// socket of the round in progress (5,000 tasks queued by the last one)
/// before any socket could see it; on another runtime it records the
/// winner at once, and each socket still queued in the round sends it in
/// the same write as the rest.
pub type Feeds = tokio::runtime::Handle;

/// Executions by key, listed while they may be joined.
pub(super) type Running<T> = Arc<Mutex<HashMap<Arc<str>, Weak<T>>>>;

/// How many executions of `running` are alive.
pub(super) fn alive<T>(running: &Running<T>) -> usize {
    lock(running)
        .values()
        .filter(|entry| entry.strong_count() > 0)
        .count()
}

/// Unlists `me` from `running` under `key`, unless another execution has
/// taken its place there.
pub(super) fn forget<T>(running: &Running<T>, key: &str, me: &T) {
    let mut running = lock(running);
    if running
        .get(key)
        .is_some_and(|entry| std::ptr::eq(entry.as_ptr(), me))
    {
        running.remove(key);
    }
}

/// The key two subscribers share an execution under: same viewer, same
/// operation, same variables.
pub(super) fn request_key(auth: &Auth, request: &async_graphql::Request) -> Arc<str> {
    format!(
        "{}\0{}\0{}\0{}",
        viewer_key(auth),
        request.operation_name.as_deref().unwrap_or(""),
        serde_json::to_string(&request.variables).unwrap_or_default(),
        request.query,
    )
    .into()
}

/// The identity a shared execution runs as: two subscribers share only if
/// the resolvers would see the same viewer.
fn viewer_key(auth: &Auth) -> String {
    match auth {
        Auth::Anonymous => "anonymous".to_owned(),
        Auth::Invalid => "invalid".to_owned(),
        Auth::User(viewer) => {
            let mut key = viewer.user_id.to_string();
            for role in &viewer.roles {
                let _ = write!(key, ",{role:?}");
            }
            key
        }
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is an assignment, a lookup or one poll of
    // an execution whose result is stored after it returns: a panic cannot
    // leave the data half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
