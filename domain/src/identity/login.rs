//! `login`: credentials for a token.

use giftdrop_entities::identity::users;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::users::view_of;
use super::{Email, Session, password, session_for};
use crate::Services;
use crate::error::{DomainError, DomainResult};

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
