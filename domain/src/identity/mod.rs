//! Identity: accounts, roles, tokens (FLOWS.md §2).

mod password;
pub mod staff;
mod token;
mod types;

pub use token::{TokenIssuer, Verified};
pub use types::{DisplayName, Email, Password, Role};

use chrono::{DateTime, Utc};
use giftdrop_entities::identity::{user_roles, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult, is_unique_violation};
use crate::jobs::SendEmail;
use crate::outbox;

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
    fn of(user: users::Model, roles: Vec<Role>) -> Self {
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

/// The roles of role rows, in display order.
fn sorted_roles<'a>(rows: impl Iterator<Item = &'a user_roles::Model>) -> Vec<Role> {
    let mut roles: Vec<Role> = rows.map(|r| Role::from(r.role)).collect();
    roles.sort();
    roles
}

async fn roles_of<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Vec<Role>> {
    let rows = user_roles::Entity::find()
        .filter(user_roles::Column::UserId.eq(user_id))
        .all(conn)
        .await?;
    Ok(sorted_roles(rows.iter()))
}

async fn view_of<C: ConnectionTrait>(conn: &C, user: users::Model) -> DomainResult<UserView> {
    let roles = roles_of(conn, user.id).await?;
    Ok(UserView::of(user, roles))
}

/// The user with `id`, if any.
pub async fn find_user<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<UserView>> {
    match users::Entity::find_by_id(id).one(conn).await? {
        Some(user) => Ok(Some(view_of(conn, user).await?)),
        None => Ok(None),
    }
}

/// The users with these ids (unknown ids are skipped), in two queries.
pub async fn find_users<C: ConnectionTrait>(conn: &C, ids: &[Uuid]) -> DomainResult<Vec<UserView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = users::Entity::find()
        .filter(users::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?;
    let roles = user_roles::Entity::find()
        .filter(user_roles::Column::UserId.is_in(ids.iter().copied()))
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|user| {
            let held = sorted_roles(roles.iter().filter(|r| r.user_id == user.id));
            UserView::of(user, held)
        })
        .collect())
}

/// The viewer behind a verified token: roles come from the database on every
/// call, so a role change takes effect on the next request. A token of a
/// deleted account is `Unauthenticated`.
pub async fn load_viewer<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Viewer> {
    let rows = user_roles::Entity::find()
        .filter(user_roles::Column::UserId.eq(user_id))
        .all(conn)
        .await?;
    if rows.is_empty()
        && users::Entity::find_by_id(user_id)
            .one(conn)
            .await?
            .is_none()
    {
        return Err(DomainError::Unauthenticated);
    }
    Ok(Viewer {
        user_id,
        roles: sorted_roles(rows.iter()),
    })
}

/// Creates a PARTICIPANT account, queues the welcome email and signs a token.
pub async fn register(
    s: &Services,
    meta: &RequestMeta,
    input: Registration,
) -> DomainResult<Session> {
    let hash = password::hash(&input.password).await?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let txn = s.db.begin().await?;
    let inserted = users::Entity::insert(users::ActiveModel {
        id: Set(id),
        email: Set(input.email.as_str().to_owned()),
        display_name: Set(input.display_name.as_str().to_owned()),
        password_hash: Set(hash),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await;
    if let Err(err) = inserted {
        return Err(if is_unique_violation(&err, "users_email_key") {
            DomainError::Conflict("an account with this email already exists".into())
        } else {
            err.into()
        });
    }
    insert_role(&txn, id, Role::Participant, None).await?;
    outbox::enqueue(
        &txn,
        meta,
        &SendEmail {
            to: input.email.as_str().to_owned(),
            subject: "Welcome to giftdrop".into(),
            body: format!(
                "Hi {},\n\nYour giftdrop account is ready. Join a giveaway, or top up your wallet to host one.\n",
                input.display_name.as_str()
            ),
            dedupe_key: format!("welcome:{id}"),
        },
    )
    .await?;
    txn.commit().await?;
    s.outbox.wake();
    let user = UserView {
        id,
        email: input.email.as_str().to_owned(),
        display_name: input.display_name.as_str().to_owned(),
        roles: vec![Role::Participant],
        created_at: now,
    };
    session_for(s, user)
}

fn session_for(s: &Services, user: UserView) -> DomainResult<Session> {
    let (token, expires_at) = s.tokens.issue(user.id)?;
    Ok(Session {
        token,
        expires_at,
        user,
    })
}

/// Checks credentials, rate-limited per email address and per client IP.
/// Wrong email and wrong password are indistinguishable, in answer and time.
pub async fn login(
    s: &Services,
    email: &str,
    password: &str,
    client_ip: &str,
) -> DomainResult<Session> {
    let email = Email::parse(email, "email")?;
    s.limiter
        .check("login", &format!("email:{}", email.as_str()))
        .await?;
    s.limiter.check("login", &format!("ip:{client_ip}")).await?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(&s.db)
        .await?;
    let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    match user {
        Some(user) if ok => {
            let view = view_of(&s.db, user).await?;
            session_for(s, view)
        }
        _ => Err(DomainError::Unauthenticated),
    }
}

async fn insert_role<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    role: Role,
    granted_by: Option<Uuid>,
) -> DomainResult<bool> {
    let rows = user_roles::Entity::insert(user_roles::ActiveModel {
        user_id: Set(user_id),
        role: Set(role.into()),
        granted_at: Set(Utc::now()),
        granted_by: Set(granted_by),
    })
    .on_conflict(
        OnConflict::columns([user_roles::Column::UserId, user_roles::Column::Role])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(rows > 0)
}

/// Grants `role` inside the caller's transaction and announces the user's
/// new state on their topic; false if they already held it.
pub(crate) async fn grant_within<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    user_id: Uuid,
    role: Role,
    granted_by: Option<Uuid>,
) -> DomainResult<bool> {
    let granted = insert_role(conn, user_id, role, granted_by).await?;
    if granted {
        let view = find_user(conn, user_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        outbox::publish(conn, meta, &user_topic(user_id), &view).await?;
    }
    Ok(granted)
}

/// The user with this email address, if any.
pub async fn find_by_email<C: ConnectionTrait>(
    conn: &C,
    email: &Email,
) -> DomainResult<Option<UserView>> {
    match users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(conn)
        .await?
    {
        Some(user) => Ok(Some(view_of(conn, user).await?)),
        None => Ok(None),
    }
}

/// Adds HOST to the viewer's roles.
pub async fn become_host(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
) -> DomainResult<UserView> {
    change_role(s, meta, viewer.user_id, Role::Host, RoleChange::Grant, None).await
}

/// Whether a role is given or taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// Give the role.
    Grant,
    /// Take the role away.
    Revoke,
}

/// Admin: gives or takes `role`. PARTICIPANT stays with every account, and
/// the last admin cannot be removed.
pub async fn change_role_as_admin(
    s: &Services,
    meta: &RequestMeta,
    admin: &Viewer,
    user_id: Uuid,
    role: Role,
    change: RoleChange,
) -> DomainResult<UserView> {
    admin.require(Role::Admin)?;
    if change == RoleChange::Revoke && role == Role::Participant {
        return Err(DomainError::bad_input(
            "role",
            "every account keeps PARTICIPANT",
        ));
    }
    change_role(s, meta, user_id, role, change, Some(admin.user_id)).await
}

/// Applies a role change in one transaction: the change, an audit entry when
/// an admin made it, and the user's new state on its topic. A change that
/// changes nothing (granting a held role) writes nothing.
async fn change_role(
    s: &Services,
    meta: &RequestMeta,
    user_id: Uuid,
    role: Role,
    change: RoleChange,
    admin: Option<Uuid>,
) -> DomainResult<UserView> {
    let txn = s.db.begin().await?;
    let user = users::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(DomainError::NotFound)?;
    let changed = match change {
        RoleChange::Grant => insert_role(&txn, user_id, role, admin).await?,
        RoleChange::Revoke => {
            if role == Role::Admin {
                guard_last_admin(&txn, user_id).await?;
            }
            user_roles::Entity::delete_many()
                .filter(user_roles::Column::UserId.eq(user_id))
                .filter(user_roles::Column::Role.eq(user_roles::Role::from(role)))
                .exec(&txn)
                .await?
                .rows_affected
                > 0
        }
    };
    let view = view_of(&txn, user).await?;
    if changed {
        if admin.is_some() {
            let action = match change {
                RoleChange::Grant => "role.grant",
                RoleChange::Revoke => "role.revoke",
            };
            audit::record(
                &txn,
                meta,
                AuditRecord {
                    actor: admin,
                    action,
                    subject: format!("user:{user_id}"),
                    detail: Some(role.as_str().to_owned()),
                },
            )
            .await?;
        }
        outbox::publish(&txn, meta, &user_topic(user_id), &view).await?;
    }
    txn.commit().await?;
    if changed {
        s.outbox.wake();
    }
    Ok(view)
}

/// `Conflict` if `user_id` is the only admin left. Admin rows are locked so
/// two concurrent revocations cannot both pass.
async fn guard_last_admin<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<()> {
    let admins = user_roles::Entity::find()
        .filter(user_roles::Column::Role.eq(user_roles::Role::Admin))
        .order_by_asc(user_roles::Column::UserId)
        .lock_exclusive()
        .all(conn)
        .await?;
    let others = admins.iter().filter(|r| r.user_id != user_id).count();
    if others == 0 && admins.iter().any(|r| r.user_id == user_id) {
        return Err(DomainError::Conflict(
            "the last admin cannot be removed".into(),
        ));
    }
    Ok(())
}

/// Creates the bootstrap admin when no account has its email, and makes
/// sure the account holds ADMIN. An existing account keeps its password:
/// `ADMIN_PASSWORD` is only the first one, so a restart never undoes a
/// password change (nor a leaked default). Safe when several processes
/// start at once: the account and its roles are inserted with
/// `ON CONFLICT DO NOTHING`, so the last to arrive finds them made.
pub async fn bootstrap_admin(s: &Services, email: &str, password: &str) -> DomainResult<UserView> {
    let meta = RequestMeta::system();
    let email = Email::parse(email, "ADMIN_EMAIL")?;
    let password = Password::parse(password, "ADMIN_PASSWORD")?;
    let exists = find_by_email(&s.db, &email).await?.is_some();
    if !exists && create_account_if_missing(s, &email, &password).await? {
        tracing::info!(email = email.as_str(), "bootstrap admin created");
    } else {
        tracing::info!(
            email = email.as_str(),
            "bootstrap admin exists: ADMIN_PASSWORD is not applied to it"
        );
    }
    let txn = s.db.begin().await?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?
        .ok_or(DomainError::NotFound)?;
    if insert_role(&txn, user.id, Role::Admin, None).await? {
        audit::record(
            &txn,
            &meta,
            AuditRecord {
                actor: None,
                action: "role.grant",
                subject: format!("user:{}", user.id),
                detail: Some("ADMIN (bootstrap from ADMIN_EMAIL)".to_owned()),
            },
        )
        .await?;
    }
    let view = view_of(&txn, user).await?;
    txn.commit().await?;
    Ok(view)
}

/// Inserts a PARTICIPANT account with `email` unless one exists (made by
/// another process meanwhile, say); true when this call created it.
async fn create_account_if_missing(
    s: &Services,
    email: &Email,
    password: &Password,
) -> DomainResult<bool> {
    let hash = password::hash(password).await?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let txn = s.db.begin().await?;
    let created = users::Entity::insert(users::ActiveModel {
        id: Set(id),
        email: Set(email.as_str().to_owned()),
        display_name: Set("Administrator".to_owned()),
        password_hash: Set(hash),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(users::Column::Email)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?
        > 0;
    if created {
        insert_role(&txn, id, Role::Participant, None).await?;
    }
    txn.commit().await?;
    Ok(created)
}
