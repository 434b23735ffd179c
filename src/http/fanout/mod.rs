//! Subscription executions, shared among the sockets that run the same
//! operation as the same viewer, their results serialized once.
//!
//! [`Executions::start`] is all a transport calls: the frames of one
//! subscription for one subscriber. What runs behind them depends on what
//! the operation's messages are ([`plan`]), never on the resolvers, which
//! only ever run ordinary executions:
//! - a snapshot subscription (each message the whole current state) joins
//!   ONE execution per (viewer, operation, variables) ([`snapshot`]);
//! - an event log (`winnerAnnounced`: items at consecutive positions after
//!   a cursor) follows ONE live execution's items, each subscriber catching
//!   up on its own execution from its last position when it is behind
//!   ([`log`]);
//! - anything else runs its own execution.

mod frame;
mod log;
mod plan;
mod registry;
mod snapshot;
mod window;

use futures_util::stream::BoxStream;
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::RequestData;

pub use frame::{Frame, Payload, Run, Wire};
pub(crate) use frame::{framed_message, text_frame};
pub use log::SharedLogs;
pub use registry::Feeds;

/// The process's subscription executions.
#[derive(Clone)]
pub struct Executions {
    snapshots: snapshot::Snapshots,
    logs: SharedLogs,
}

impl Executions {
    /// No execution running yet; shared log executions keep `log_window`
    /// frames each; the tasks of shared executions run on `feeds`.
    pub fn new(log_window: usize, feeds: Feeds) -> Self {
        Self {
            snapshots: snapshot::Snapshots::new(feeds.clone()),
            logs: SharedLogs::new(log_window, feeds),
        }
    }

    /// Shared snapshot executions running now (for tests and metrics).
    pub fn running(&self) -> usize {
        self.snapshots.running()
    }

    /// The shared live executions of event logs.
    pub fn logs(&self) -> &SharedLogs {
        &self.logs
    }

    /// The frames of `request` (parsed already) for one subscriber running
    /// it with `data`: joining a shared execution where its messages allow,
    /// else its own.
    pub fn start(
        &self,
        schema: &AppSchema,
        mut request: async_graphql::Request,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        match plan::plan(&mut request) {
            plan::Plan::Snapshot => self.snapshots.subscribe(schema, request, data),
            plan::Plan::Log(shape) => self.logs.subscribe(schema, &request, *shape, data),
            plan::Plan::Alone => Frame::execute(schema, request, data),
        }
    }
}
