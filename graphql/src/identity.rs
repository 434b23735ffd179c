//! Identity resolvers: accounts, sessions, roles (FLOWS.md §2).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::identity::{
    self, DisplayName, Email, Password, Registration, RoleChange, UserView,
};
use giftdrop_domain::{DomainError, Viewer};

use crate::auth::{request, require_role, require_viewer, services, viewer};
use crate::error::Gql;
use crate::ids;
use crate::wallet::{self, Wallet};

/// A platform role.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Role")]
pub enum RoleGql {
    /// Every user.
    Participant,
    /// Runs giveaway events.
    Host,
    /// Merchant staff.
    Merchant,
    /// Platform operator.
    Admin,
}

impl From<identity::Role> for RoleGql {
    fn from(role: identity::Role) -> Self {
        match role {
            identity::Role::Participant => Self::Participant,
            identity::Role::Host => Self::Host,
            identity::Role::Merchant => Self::Merchant,
            identity::Role::Admin => Self::Admin,
        }
    }
}

impl From<RoleGql> for identity::Role {
    fn from(role: RoleGql) -> Self {
        match role {
            RoleGql::Participant => Self::Participant,
            RoleGql::Host => Self::Host,
            RoleGql::Merchant => Self::Merchant,
            RoleGql::Admin => Self::Admin,
        }
    }
}

/// A user as seen by a particular viewer.
pub struct User {
    view: UserView,
    private_visible: bool,
}

impl User {
    /// `view` as `viewer` may see it: private fields only for the user
    /// themself and admins.
    pub fn seen_by(view: UserView, viewer: Option<&Viewer>) -> Self {
        let private_visible = viewer.is_some_and(|v| v.user_id == view.id || v.is_admin());
        Self {
            view,
            private_visible,
        }
    }

    /// `view` with private fields visible (the user themself, or an admin).
    pub fn with_private_fields(view: UserView) -> Self {
        Self {
            view,
            private_visible: true,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ids::of(self.view.id)
    }

    /// Null unless the viewer is this user or an admin.
    async fn email(&self) -> Option<&str> {
        self.private_visible.then_some(self.view.email.as_str())
    }

    async fn display_name(&self) -> &str {
        &self.view.display_name
    }

    async fn roles(&self) -> Vec<RoleGql> {
        self.view.roles.iter().copied().map(RoleGql::from).collect()
    }

    /// Null unless the viewer is this user or an admin.
    async fn wallet(&self, ctx: &Context<'_>) -> Result<Option<Wallet>> {
        if !self.private_visible {
            return Ok(None);
        }
        Ok(Some(wallet::of_user(ctx, self.view.id).await?))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.view.created_at
    }
}

/// A token and the user it is for.
pub struct AuthPayload {
    token: String,
    expires_at: DateTime<Utc>,
    user: UserView,
}

#[Object]
impl AuthPayload {
    async fn token(&self) -> &str {
        &self.token
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    async fn user(&self) -> User {
        User::with_private_fields(self.user.clone())
    }
}

impl From<identity::Session> for AuthPayload {
    fn from(s: identity::Session) -> Self {
        Self {
            token: s.token,
            expires_at: s.expires_at,
            user: s.user,
        }
    }
}

/// `register` input.
#[derive(InputObject)]
pub struct RegisterInput {
    email: String,
    /// At least 10 characters.
    password: String,
    display_name: String,
}

impl RegisterInput {
    fn validate(&self) -> Result<Registration, DomainError> {
        Ok(Registration {
            email: Email::parse(&self.email, "input.email")?,
            password: Password::parse(&self.password, "input.password")?,
            display_name: DisplayName::parse(&self.display_name, "input.displayName")?,
        })
    }
}

/// Identity queries.
#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The signed-in user, or null.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(viewer) = viewer(ctx)? else {
            return Ok(None);
        };
        let found = identity::find_user(&services(ctx)?.db, viewer.user_id)
            .await
            .gql()?;
        Ok(found.map(|view| User::seen_by(view, Some(viewer))))
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let viewer = viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let found = identity::find_user(&services(ctx)?.db, id).await.gql()?;
        Ok(found.map(|view| User::seen_by(view, viewer)))
    }
}

/// Identity mutations.
#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let registration = input.validate().gql()?;
        let session = identity::register(services(ctx)?, &request(ctx)?.meta, registration)
            .await
            .gql()?;
        Ok(session.into())
    }

    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AuthPayload> {
        let client_ip = &request(ctx)?.client_ip;
        let session = identity::login(services(ctx)?, &email, &password, client_ip)
            .await
            .gql()?;
        Ok(session.into())
    }

    /// Adds the HOST role to the signed-in user.
    async fn become_host(&self, ctx: &Context<'_>) -> Result<User> {
        let viewer = require_viewer(ctx)?;
        let view = identity::become_host(services(ctx)?, &request(ctx)?.meta, viewer)
            .await
            .gql()?;
        Ok(User::seen_by(view, Some(viewer)))
    }

    /// Admin only.
    async fn grant_role(&self, ctx: &Context<'_>, user_id: ID, role: RoleGql) -> Result<User> {
        change_role(ctx, &user_id, role, RoleChange::Grant).await
    }

    /// Admin only.
    async fn revoke_role(&self, ctx: &Context<'_>, user_id: ID, role: RoleGql) -> Result<User> {
        change_role(ctx, &user_id, role, RoleChange::Revoke).await
    }
}

async fn change_role(
    ctx: &Context<'_>,
    user_id: &ID,
    role: RoleGql,
    change: RoleChange,
) -> Result<User> {
    let admin = require_role(ctx, identity::Role::Admin)?;
    let user_id = ids::parse(user_id, "userId").gql()?;
    let view = identity::change_role_as_admin(
        services(ctx)?,
        &request(ctx)?.meta,
        admin,
        user_id,
        role.into(),
        change,
    )
    .await
    .gql()?;
    Ok(User::seen_by(view, Some(admin)))
}
