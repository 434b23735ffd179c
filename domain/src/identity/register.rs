//! `register`: a new PARTICIPANT account.

use chrono::Utc;
use giftdrop_entities::identity::users;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use uuid::Uuid;

use super::roles::insert_role;
use super::{Registration, Role, Session, UserView, password, session_for};
use crate::Services;
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult, is_unique_violation};
use crate::jobs::SendEmail;
use crate::outbox;

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
