//! The `giftdrop` command line: one binary, several run modes.

use clap::{Parser, Subcommand};

use crate::config::Config;

/// giftdrop: giveaway events with gift-card prizes, a card marketplace, wallets and escrows.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Run mode; `all` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings (environment variables or flags).
    #[command(flatten)]
    pub config: Config,
}

/// Run modes (ARCHITECTURE.md).
#[derive(Subcommand, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// HTTP API, GraphQL, subscriptions, outbox relay.
    Serve,
    /// Background job workers and the outbox sweep.
    Worker,
    /// Both in one process; creates and migrates the database first.
    All,
    /// Run migrations and exit.
    Migrate,
}
