//! The giftdrop GraphQL schema: one resolver module per domain, merged into
//! the roots. Resolvers are thin: authorize, call one domain function, map
//! the result. Transports (HTTP, WebSocket) live in the app crate and attach
//! [`auth::RequestData`] to every request.

pub mod auth;
pub mod card;
pub mod error;
pub mod escrow;
pub mod event;
pub mod event_live;
pub mod event_mutation;
pub mod identity;
pub mod ids;
pub mod input;
pub mod limits;
pub mod live;
pub mod loaders;
pub mod merchant;
pub mod merchant_mutation;
pub mod money;
pub mod nodes;
pub mod operation;
pub mod ops;
pub mod page;
pub mod participant;
pub mod payout;
pub mod platform;
pub mod versioned;
pub mod wallet;

use async_graphql::{MergedObject, MergedSubscription, Schema};
use giftdrop_domain::Services;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    platform::PlatformQuery,
    identity::IdentityQuery,
    ops::OpsQuery,
    wallet::WalletQuery,
    merchant::MerchantQuery,
    card::CardQuery,
    escrow::EscrowQuery,
    payout::PayoutQuery,
    event::EventQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    identity::IdentityMutation,
    wallet::WalletMutation,
    payout::PayoutMutation,
    merchant_mutation::MerchantMutation,
    card::CardMutation,
    escrow::EscrowMutation,
    event_mutation::EventMutation,
);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct Subscription(live::LiveSubscription, event_live::EventSubscription);

/// The served schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Query-shape limits and exposure switches.
#[derive(Clone, Copy, Debug)]
pub struct SchemaOptions {
    /// Deepest allowed selection nesting (the standard introspection query
    /// needs 13).
    pub max_depth: usize,
    /// Highest allowed complexity (one per field by default).
    pub max_complexity: usize,
    /// Serve introspection (off in production unless asked for).
    pub introspection: bool,
    /// Suggest field names in validation errors (off in production).
    pub suggestions: bool,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_complexity: 500,
            introspection: true,
            suggestions: true,
        }
    }
}

impl SchemaOptions {
    /// The limits the transports check documents against before the
    /// schema validates them ([`limits::check`]).
    pub fn limits(&self) -> limits::Limits {
        limits::Limits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
        }
    }
}

/// Builds the schema once per process.
pub fn build_schema(services: Services, options: SchemaOptions) -> AppSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .data(loaders::loader(services.clone()))
    .data(services)
    .limit_depth(options.max_depth)
    .limit_complexity(options.max_complexity)
    .limit_recursive_depth(limits::MAX_NESTING)
    .limit_directives(10);
    if !options.introspection {
        builder = builder.disable_introspection();
    }
    if !options.suggestions {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}
