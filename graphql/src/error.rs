//! Mapping domain errors onto the contract's `extensions.code` values.
//!
//! Never let `?` turn a `DomainError` into an `async_graphql::Error` through
//! its blanket `From<Display>`: call [`Gql::gql`], which picks the code,
//! keeps client-safe messages, and turns `Internal` into a generic message
//! (the cause chain goes to the logs and Sentry, the correlation id is
//! attached by [`finish_errors`], which the transports call on every
//! response).

use async_graphql::{Error, ErrorExtensionValues, ErrorExtensions, ServerError};
use giftdrop_domain::DomainError;

/// The generic message of every `INTERNAL` error.
pub const INTERNAL_MESSAGE: &str =
    "Something went wrong on our side. Quote the correlation id when reporting it.";

/// Completes every error of `response` as the contract wants it: an error
/// without `extensions.code` (async-graphql's own: a parse or validation
/// failure, an argument or variable that does not coerce, an unknown
/// operation) gets `BAD_USER_INPUT`, as our resolvers give every error a
/// code; every `INTERNAL` error gets `correlation`, so the generic message
/// a client sees leads to the logged details. Both transports call it on
/// every response.
pub fn finish_errors(response: &mut async_graphql::Response, correlation: &str) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        match extensions.get("code") {
            None => extensions.set("code", BAD_USER_INPUT),
            Some(code) if *code == async_graphql::Value::from("INTERNAL") => {
                extensions.set("correlationId", correlation);
            }
            Some(_) => {}
        }
    }
}

/// The contract's code of a request the client got wrong.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// A `BAD_USER_INPUT` error of a whole request (a document over a limit),
/// with the input path `field` when there is one.
pub fn bad_user_input(message: impl Into<String>, field: Option<&str>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", BAD_USER_INPUT);
    if let Some(field) = field {
        extensions.set("field", field);
    }
    error.extensions = Some(extensions);
    error
}

/// Converts a domain result into a GraphQL result with a contract code.
pub trait Gql<T> {
    /// See the module docs.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> Gql<T> for Result<T, DomainError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}

/// The GraphQL error for one domain error.
pub fn to_graphql(err: DomainError) -> Error {
    let message = err.to_string();
    match err {
        DomainError::Unauthenticated => coded(message, "UNAUTHENTICATED"),
        DomainError::Forbidden => coded(message, "FORBIDDEN"),
        DomainError::NotFound => coded(message, "NOT_FOUND"),
        DomainError::Conflict(_) | DomainError::BalanceLimit => coded(message, "CONFLICT"),
        DomainError::BadInput { field, .. } => Error::new(message).extend_with(|_, e| {
            e.set("code", BAD_USER_INPUT);
            e.set("field", field);
        }),
        DomainError::InsufficientFunds {
            required,
            available,
        } => Error::new(message).extend_with(|_, e| {
            e.set("code", "INSUFFICIENT_FUNDS");
            e.set("required", required.to_string());
            e.set("available", available.to_string());
        }),
        DomainError::IdempotencyKeyReused => coded(message, "IDEMPOTENCY_KEY_REUSED"),
        DomainError::IdempotencyKeyInUse => coded(message, "IDEMPOTENCY_KEY_IN_USE"),
        DomainError::PaymentProviderUnavailable => coded(message, "PAYMENT_PROVIDER_UNAVAILABLE"),
        DomainError::RateLimited {
            retry_after_seconds,
        } => Error::new(message).extend_with(|_, e| {
            e.set("code", "RATE_LIMITED");
            e.set("retryAfterSeconds", retry_after_seconds);
        }),
        DomainError::Internal(cause) => {
            tracing::error!(
                error = format!("{cause:#}"),
                "internal error while resolving a request"
            );
            coded(INTERNAL_MESSAGE.to_owned(), "INTERNAL")
        }
    }
}

fn coded(message: String, code: &'static str) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

#[cfg(test)]
mod tests {
    use giftdrop_domain::money::Amount;

    use super::*;

    fn extensions(err: DomainError) -> serde_json::Value {
        let error = to_graphql(err).into_server_error(async_graphql::Pos::default());
        serde_json::to_value(error.extensions).expect("extensions serialize")
    }

    #[test]
    fn money_errors_carry_their_contract_codes_and_extras() {
        let insufficient = extensions(DomainError::InsufficientFunds {
            required: Amount::new(500_000).expect("amount"),
            available: Amount::new(1_250).expect("amount"),
        });
        assert_eq!(
            insufficient,
            serde_json::json!({ "code": "INSUFFICIENT_FUNDS", "required": "500000", "available": "1250" })
        );
        for (err, code) in [
            (DomainError::IdempotencyKeyReused, "IDEMPOTENCY_KEY_REUSED"),
            (DomainError::IdempotencyKeyInUse, "IDEMPOTENCY_KEY_IN_USE"),
            (
                DomainError::PaymentProviderUnavailable,
                "PAYMENT_PROVIDER_UNAVAILABLE",
            ),
            (DomainError::NotFound, "NOT_FOUND"),
            (DomainError::Forbidden, "FORBIDDEN"),
            (DomainError::Conflict("settled".into()), "CONFLICT"),
        ] {
            assert_eq!(extensions(err)["code"], code);
        }
        let internal = to_graphql(DomainError::Internal(anyhow::anyhow!(
            "relation ledger.accounts does not exist"
        )));
        assert_eq!(internal.message, INTERNAL_MESSAGE, "no internal text leaks");
    }
}
