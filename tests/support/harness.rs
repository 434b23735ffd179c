//! The runtime every integration test runs on, named in its attribute:
//!
//! ```text
//! #[tokio::test(crate = "crate::support::harness")]
//! ```
//!
//! It is tokio's own test runtime (same flavors and options), plus a
//! [`Scope`] around the test's body: everything the test creates through
//! `support` (databases, Redis namespaces, mail directories, apps) is
//! recorded there, and once the body has ended, passed or panicked, the
//! scope's teardown (`teardown.rs`) stops the apps, checks that no work was
//! left behind (when the body passed), and removes what was created.
//!
//! Apps the body drops while it goes on stop at once, as they always did;
//! apps dropped when the body ends (its locals) keep running into the
//! teardown, so they can finish the work the test caused before they stop.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use giftdrop::app::Running;
use giftdrop::config::Config;
use tokio_util::sync::CancellationToken;

pub use tokio::pin;

thread_local! {
    /// The scope of the test running on this thread.
    static SCOPE: RefCell<Option<Arc<Scope>>> = const { RefCell::new(None) };
    /// Whether this thread is inside a poll of the test's body.
    static IN_BODY: Cell<bool> = const { Cell::new(false) };
}

/// The scope of the test running on this thread; panics, saying how to fix
/// it, when the test does not run on this harness.
pub fn scope() -> Arc<Scope> {
    SCOPE
        .with(|scope| scope.borrow().clone())
        .expect(
            "this test does not run on the test harness, so nothing would remove its \
             database and Redis namespace: write #[tokio::test(crate = \"crate::support::harness\")] \
             (and create apps and databases on the test's own thread)",
        )
}

/// An app the test dropped, still running, with what it can drain.
pub struct Parked {
    /// Its shutdown token.
    pub shutdown: CancellationToken,
    /// Its running parts (`None` once stopped by the test).
    pub running: Option<Running>,
    /// Its configuration.
    pub config: Config,
    /// Whether it runs job workers.
    pub worker: bool,
}

/// What one test created and started, for its teardown.
#[derive(Default)]
pub struct Scope {
    state: Mutex<State>,
}

/// The recorded parts of a [`Scope`].
#[derive(Default)]
pub struct State {
    /// Databases to drop (and whose outbox is checked).
    pub databases: Vec<String>,
    /// Redis namespaces to delete (and whose queues are checked).
    pub namespaces: Vec<String>,
    /// Temporary files and directories to remove.
    pub paths: Vec<PathBuf>,
    /// Configurations a drain worker may start with, first preferred: the
    /// ones `AppOptions::new` made, then those apps were spawned with.
    pub configs: Vec<Config>,
    /// Work a test leaves behind on purpose: (database or namespace, why).
    pub leftovers_allowed: Vec<(String, String)>,
    /// Apps dropped while the body was being polled, not yet stopped.
    pub dropped: Vec<Parked>,
}

impl Scope {
    /// The recorded parts.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a database to drop at the end.
    pub fn database(&self, name: &str) {
        self.state().databases.push(name.to_owned());
    }

    /// Records a Redis namespace to delete at the end.
    pub fn namespace(&self, prefix: &str) {
        self.state().namespaces.push(prefix.to_owned());
    }

    /// Records the configuration `AppOptions::new` made: its mail
    /// directory is removed at the end, and a drain worker prefers it.
    pub fn world(&self, config: &Config) {
        let mut state = self.state();
        state.paths.push(PathBuf::from(&config.mail_dir));
        state.configs.push(config.clone());
    }

    /// Records a temporary file or directory to remove at the end.
    pub fn path(&self, path: &Path) {
        self.state().paths.push(path.to_owned());
    }

    /// Records the configuration an app was spawned with, for a drain
    /// worker on a database no `AppOptions::new` made.
    pub fn spawned(&self, config: &Config) {
        self.state().configs.push(config.clone());
    }

    /// Lets the test leave work in `place` (a database or namespace).
    pub fn allow_leftovers(&self, place: &str, why: &str) {
        self.state()
            .leftovers_allowed
            .push((place.to_owned(), why.to_owned()));
    }

    /// An app was dropped: inside a poll of the body it is parked (stopped
    /// after that poll unless the body ended with it); anywhere else it
    /// stops at once.
    pub fn app_dropped(&self, app: Parked) {
        if IN_BODY.with(Cell::get) {
            self.state().dropped.push(app);
        } else {
            stop_now(app);
        }
    }

    /// Stops the apps the body dropped during a poll that did not end it.
    fn stop_dropped(&self) {
        let dropped = std::mem::take(&mut self.state().dropped);
        dropped.into_iter().for_each(stop_now);
    }
}

/// Stops `app` as dropping it always did: its token cancelled, its tasks
/// aborted.
fn stop_now(app: Parked) {
    app.shutdown.cancel();
    drop(app.running);
}

/// Sets [`SCOPE`] for the duration of a test; unsets it after.
struct Entered;

impl Entered {
    fn new(scope: Arc<Scope>) -> Self {
        SCOPE.with(|slot| *slot.borrow_mut() = Some(scope));
        Self
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        SCOPE.with(|slot| slot.borrow_mut().take());
    }
}

/// Marks a poll of the body, also when the body panics.
struct Polling;

impl Polling {
    fn new() -> Self {
        IN_BODY.with(|flag| flag.set(true));
        Self
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        IN_BODY.with(|flag| flag.set(false));
    }
}

/// The test's body, polled with [`IN_BODY`] set.
struct Body<F> {
    inner: Pin<Box<F>>,
    scope: Arc<Scope>,
}

impl<F: Future> Future for Body<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = {
            let _polling = Polling::new();
            self.inner.as_mut().poll(cx)
        };
        if polled.is_pending() {
            self.scope.stop_dropped();
        }
        polled
    }
}

/// `tokio::runtime`, as `#[tokio::test]` uses it.
pub mod runtime {
    use super::{Arc, AssertUnwindSafe, Body, Entered, FutureExt, Scope};

    /// tokio's runtime builder; builds a [`Runtime`].
    pub struct Builder(tokio::runtime::Builder);

    impl Builder {
        /// See [`tokio::runtime::Builder::new_current_thread`].
        pub fn new_current_thread() -> Self {
            Self(tokio::runtime::Builder::new_current_thread())
        }

        /// See [`tokio::runtime::Builder::new_multi_thread`].
        pub fn new_multi_thread() -> Self {
            Self(tokio::runtime::Builder::new_multi_thread())
        }

        /// See [`tokio::runtime::Builder::worker_threads`].
        pub fn worker_threads(&mut self, threads: usize) -> &mut Self {
            self.0.worker_threads(threads);
            self
        }

        /// See [`tokio::runtime::Builder::enable_all`].
        pub fn enable_all(&mut self) -> &mut Self {
            self.0.enable_all();
            self
        }

        /// The runtime.
        pub fn build(&mut self) -> std::io::Result<Runtime> {
            self.0.build().map(Runtime)
        }
    }

    /// A tokio runtime whose `block_on` runs a test's body, then its
    /// teardown.
    pub struct Runtime(tokio::runtime::Runtime);

    impl Runtime {
        /// Runs `body` in a fresh [`Scope`], then tears the scope down:
        /// the body's panic, if any, is resumed after the cleanup; if the
        /// body passed but left work behind or could not be cleaned up,
        /// the test fails with what was left.
        pub fn block_on<F: std::future::Future>(&self, body: F) -> F::Output {
            let scope = Arc::new(Scope::default());
            let _entered = Entered::new(scope.clone());
            self.0.block_on(async move {
                let body = Body {
                    inner: Box::pin(body),
                    scope: scope.clone(),
                };
                let outcome = AssertUnwindSafe(body).catch_unwind().await;
                let report = crate::support::teardown::run(&scope, outcome.is_err()).await;
                match outcome {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(output) => {
                        if let Err(report) = report {
                            panic!("{report}");
                        }
                        output
                    }
                }
            })
        }
    }
}
