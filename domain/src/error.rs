//! The one error type of the domain layer.
//!
//! Client-meaningful variants map one-to-one onto the contract's
//! `extensions.code` values (FLOWS.md §1); everything else is `Internal`,
//! which wraps the full `anyhow` cause chain for logs and Sentry and is shown
//! to clients only as a generic message with the correlation id. Use `anyhow`
//! in startup code and jobs, `DomainError` in request handling.

use sea_orm::sqlx::error::DatabaseError;
use sea_orm::{DbErr, RuntimeErr};

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// No valid credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// Signed in, but not allowed to do this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// The thing does not exist, or the viewer may not know it exists.
    #[error("not found")]
    NotFound,
    /// An input failed validation; `field` is the input path.
    #[error("{message}")]
    BadInput {
        /// Input path, e.g. `input.email`.
        field: String,
        /// Human-readable reason.
        message: String,
    },
    /// A state transition that is not allowed.
    #[error("{0}")]
    Conflict(String),
    /// A debit larger than the wallet balance.
    #[error("insufficient funds: {required} required, {available} available")]
    InsufficientFunds {
        /// What the debit needs.
        required: crate::money::Amount,
        /// The wallet balance.
        available: crate::money::Amount,
    },
    /// The idempotency key was used before with a different input.
    #[error("this idempotency key was already used with a different input")]
    IdempotencyKeyReused,
    /// The idempotency key is being processed by a concurrent request.
    #[error("a request with this idempotency key is still being processed; retry shortly")]
    IdempotencyKeyInUse,
    /// The payment provider failed, timed out, or its breaker is open.
    #[error("the payment provider is unavailable; retry later")]
    PaymentProviderUnavailable,
    /// A rate limit was exceeded.
    #[error("too many requests, retry in {retry_after_seconds} s")]
    RateLimited {
        /// Whole seconds until the next attempt can succeed.
        retry_after_seconds: u64,
    },
    /// A credit would take a wallet's balance past the largest the ledger
    /// holds (a bigint): nothing was posted.
    #[error("the wallet's balance cannot hold this amount")]
    BalanceLimit,
    /// Anything else: an infrastructure failure or a bug.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl DomainError {
    /// A validation failure of the input at `field`.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when this is a database unique violation of the constraint
    /// named `constraint`.
    pub fn is_unique_violation(&self, constraint: &str) -> bool {
        self.db_err()
            .is_some_and(|db| is_unique_violation(db, constraint))
    }

    /// The database error inside an `Internal`, if it is one.
    fn db_err(&self) -> Option<&DbErr> {
        match self {
            Self::Internal(err) => err.downcast_ref::<DbErr>(),
            _ => None,
        }
    }

    /// True when this is a database integrity-constraint violation
    /// (SQLSTATE class 23: unique, foreign key, check, not null): the
    /// statement that raised it wrote nothing.
    pub fn is_constraint_violation(&self) -> bool {
        self.db_err()
            .and_then(database_error)
            .and_then(|db| db.code())
            .is_some_and(|code| code.starts_with(INTEGRITY_CONSTRAINT_VIOLATION))
    }

    /// `BalanceLimit` in place of a database "numeric value out of range"
    /// (SQLSTATE 22003), which a posting's balance update raises when the
    /// sum would overflow; any other error unchanged. Postings call it.
    #[must_use]
    pub fn or_balance_limit(self) -> Self {
        let out_of_range = self
            .db_err()
            .and_then(database_error)
            .and_then(|db| db.code())
            .is_some_and(|code| code == NUMERIC_VALUE_OUT_OF_RANGE);
        if out_of_range {
            Self::BalanceLimit
        } else {
            self
        }
    }

    /// Prefixes the input path of a `BadInput` (e.g. `email` -> `input.email`).
    #[must_use]
    pub fn under(self, parent: &str) -> Self {
        match self {
            Self::BadInput { field, message } => Self::BadInput {
                field: format!("{parent}.{field}"),
                message,
            },
            other => other,
        }
    }
}

impl From<DbErr> for DomainError {
    fn from(err: DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database operation failed"))
    }
}

impl From<redis::RedisError> for DomainError {
    fn from(err: redis::RedisError) -> Self {
        Self::Internal(anyhow::Error::new(err).context("redis operation failed"))
    }
}

impl crate::money::AmountError {
    /// This error as `BAD_USER_INPUT` on `field`.
    pub fn at(self, field: &str) -> DomainError {
        DomainError::bad_input(field, self.to_string())
    }
}

/// Result alias for use cases.
pub type DomainResult<T> = Result<T, DomainError>;

/// Postgres' SQLSTATE for a value out of its type's range.
const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
/// Postgres' SQLSTATE class of integrity-constraint violations.
const INTEGRITY_CONSTRAINT_VIOLATION: &str = "23";
/// Postgres' SQLSTATE for a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// The error the database itself raised, if `err` is one.
fn database_error(err: &DbErr) -> Option<&dyn DatabaseError> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            err.as_database_error()
        }
        _ => None,
    }
}

/// True when `err` is a unique violation of the constraint named
/// `constraint`, read from the error's constraint field (never from its
/// message, whose wording depends on the server's locale and version).
pub fn is_unique_violation(err: &DbErr, constraint: &str) -> bool {
    database_error(err).is_some_and(|db| {
        db.code().as_deref() == Some(UNIQUE_VIOLATION) && db.constraint() == Some(constraint)
    })
}
