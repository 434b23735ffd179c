//! The `ops` schema: the transactional outbox and the audit log.

pub mod audit_log;
pub mod outbox;
