//! GraphQL `ID`s are canonical UUID text.

use async_graphql::ID;
use giftdrop_domain::{DomainError, DomainResult};
use uuid::Uuid;

/// Parses an id argument; a malformed one is `BAD_USER_INPUT` on `field`.
pub fn parse(id: &ID, field: &str) -> DomainResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| DomainError::bad_input(field, "is not a valid id"))
}

/// The `ID` of a UUID.
pub fn of(id: Uuid) -> ID {
    ID(id.to_string())
}
