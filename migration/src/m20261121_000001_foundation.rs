//! The schemas of every bounded context, identity (users, roles) and ops
//! (outbox, audit log).

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// Foundation schemas and tables.
#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
CREATE SCHEMA IF NOT EXISTS identity;
CREATE SCHEMA IF NOT EXISTS giveaway;
CREATE SCHEMA IF NOT EXISTS giftcard;
CREATE SCHEMA IF NOT EXISTS ledger;
CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE identity.users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_normalized CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 100)
);
CREATE INDEX users_created_at_idx ON identity.users (created_at);

CREATE TABLE identity.user_roles (
    user_id    uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('PARTICIPANT', 'HOST', 'MERCHANT', 'ADMIN')),
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by uuid REFERENCES identity.users (id) ON DELETE SET NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_granted_by_idx ON identity.user_roles (granted_by);
CREATE INDEX user_roles_role_idx ON identity.user_roles (role);

CREATE TABLE ops.outbox (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('publish', 'job')),
    target         text NOT NULL CHECK (target <> ''),
    payload        jsonb NOT NULL,
    correlation_id text,
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error     text,
    available_at   timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_available_idx ON ops.outbox (available_at, id);

CREATE TABLE ops.audit_log (
    id             uuid PRIMARY KEY,
    actor_id       uuid REFERENCES identity.users (id) ON DELETE SET NULL,
    action         text NOT NULL CHECK (action <> ''),
    subject        text NOT NULL,
    detail         text,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON ops.audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON ops.audit_log (actor_id);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS ops.audit_log;
DROP TABLE IF EXISTS ops.outbox;
DROP TABLE IF EXISTS identity.user_roles;
DROP TABLE IF EXISTS identity.users;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, DOWN).await
    }
}
