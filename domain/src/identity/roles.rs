//! Role changes: a user becoming a host, an admin granting or revoking a
//! role, and the grants other use cases make (merchant staff).

use chrono::Utc;
use giftdrop_entities::identity::{user_roles, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::OnConflict,
};
use uuid::Uuid;

use super::users::{find_user, view_of};
use super::{Role, UserView, user_topic};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::outbox;

/// Gives `user_id` `role` unless they hold it; true when it was given.
pub(super) async fn insert_role<C: ConnectionTrait>(
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
