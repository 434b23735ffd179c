//! Reads of users and their roles.

use giftdrop_entities::identity::{user_roles, users};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Email, Role, UserView};
use crate::context::Viewer;
use crate::error::{DomainError, DomainResult};

/// The roles of role rows, in display order.
fn sorted_roles<'a>(rows: impl Iterator<Item = &'a user_roles::Model>) -> Vec<Role> {
    let mut roles: Vec<Role> = rows.map(|r| Role::from(r.role)).collect();
    roles.sort();
    roles
}

/// The roles `user_id` holds, in display order.
async fn roles_of<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Vec<Role>> {
    let rows = user_roles::Entity::find()
        .filter(user_roles::Column::UserId.eq(user_id))
        .all(conn)
        .await?;
    Ok(sorted_roles(rows.iter()))
}

/// `user` as the rest of the system sees it, with its roles.
pub(super) async fn view_of<C: ConnectionTrait>(
    conn: &C,
    user: users::Model,
) -> DomainResult<UserView> {
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
