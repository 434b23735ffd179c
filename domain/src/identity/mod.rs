//! Identity: accounts, roles, tokens (FLOWS.md §2). One use case per file:
//! [`register`](register()), [`login`](login()), role changes (`roles`),
//! the bootstrap admin (`bootstrap`); reads of users in `users`.

mod bootstrap;
mod login;
mod password;
mod register;
mod roles;
pub mod staff;
mod token;
mod types;
mod users;

pub use crate::context::Role;
pub use bootstrap::bootstrap_admin;
pub use login::login;
pub use register::register;
pub(crate) use roles::grant_within;
pub use roles::{RoleChange, become_host, change_role_as_admin};
pub use token::{TokenIssuer, Verified};
pub use types::{DisplayName, Email, Password};
pub use users::{find_by_email, find_user, find_users, load_viewer};

use chrono::{DateTime, Utc};
use giftdrop_entities::identity::users as user_rows;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::error::DomainResult;

/// A user as the rest of the system sees it; also the payload published on
/// the user's topic when it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Account id.
    pub id: Uuid,
    /// Normalized email address.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Roles held, in display order.
    pub roles: Vec<Role>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl UserView {
    fn of(user: user_rows::Model, roles: Vec<Role>) -> Self {
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            roles,
            created_at: user.created_at,
        }
    }
}

/// The pub/sub topic that carries a user's changes.
pub fn user_topic(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// Validated `register` input.
pub struct Registration {
    /// Login email.
    pub email: Email,
    /// Login password.
    pub password: Password,
    /// Public name.
    pub display_name: DisplayName,
}

/// A freshly signed token for a user.
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Whom it is for.
    pub user: UserView,
}

fn session_for(s: &Services, user: UserView) -> DomainResult<Session> {
    let (token, expires_at) = s.tokens.issue(user.id)?;
    Ok(Session {
        token,
        expires_at,
        user,
    })
}
