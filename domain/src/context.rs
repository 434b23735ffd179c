//! Who is asking, and the request's correlation id: the two things every use
//! case receives from the edge.

use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::identity::Role;

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
