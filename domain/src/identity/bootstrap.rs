//! The bootstrap admin (`ADMIN_EMAIL`, `ADMIN_PASSWORD`).

use chrono::Utc;
use giftdrop_entities::identity::users;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::OnConflict,
};
use uuid::Uuid;

use super::roles::insert_role;
use super::users::{find_by_email, view_of};
use super::{Email, Password, Role, UserView, password};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};

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
