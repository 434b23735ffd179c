//! Who is asking, and the request's correlation id: the two things every use
//! case receives from the edge.

use giftdrop_entities::identity::user_roles;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};

/// A signed-in user with the roles read from the database for this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The user's id.
    pub user_id: Uuid,
    /// Roles held right now.
    pub roles: Vec<Role>,
}

impl Viewer {
    /// True when the viewer holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// True for platform admins.
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// `Forbidden` unless the viewer holds `role`.
    pub fn require(&self, role: Role) -> DomainResult<()> {
        if self.has(role) {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }
}

/// Request-scoped facts carried into rows, jobs and audit entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// The `x-correlation-id` of the request (or job) that caused the work.
    pub correlation_id: String,
}

impl RequestMeta {
    /// Meta for work the system starts itself (bootstrap, schedules).
    pub fn system() -> Self {
        Self {
            correlation_id: format!("system-{}", Uuid::new_v4()),
        }
    }
}

/// A platform role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Every user: joins events, buys cards.
    Participant,
    /// Funds and runs giveaway events.
    Host,
    /// Staff of at least one merchant.
    Merchant,
    /// Platform operator.
    Admin,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 4] = [Role::Participant, Role::Host, Role::Merchant, Role::Admin];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Participant => "PARTICIPANT",
            Role::Host => "HOST",
            Role::Merchant => "MERCHANT",
            Role::Admin => "ADMIN",
        }
    }
}

impl From<Role> for user_roles::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Participant => Self::Participant,
            Role::Host => Self::Host,
            Role::Merchant => Self::Merchant,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<user_roles::Role> for Role {
    fn from(role: user_roles::Role) -> Self {
        match role {
            user_roles::Role::Participant => Self::Participant,
            user_roles::Role::Host => Self::Host,
            user_roles::Role::Merchant => Self::Merchant,
            user_roles::Role::Admin => Self::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_names() {
        use sea_orm::ActiveEnum;
        for role in Role::ALL {
            let stored = user_roles::Role::from(role);
            assert_eq!(stored.to_value(), role.as_str());
            assert_eq!(Role::from(stored), role);
        }
    }
}
