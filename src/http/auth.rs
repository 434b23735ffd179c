//! Who is asking: the `Authorization` value of a request, or of a
//! WebSocket's connection_init, resolved into an [`Auth`].

use giftdrop_domain::identity;
use giftdrop_domain::{DomainError, Services};
use giftdrop_graphql::auth::Auth;

/// Resolves an `Authorization` value into who is asking. Only an
/// infrastructure failure is an error; bad credentials are [`Auth::Invalid`].
pub async fn resolve_auth(
    services: &Services,
    authorization: Option<&str>,
) -> Result<Auth, DomainError> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Auth::Anonymous);
    };
    let Ok(user_id) = services.tokens.verify_bearer(header) else {
        return Ok(Auth::Invalid);
    };
    // Boxed: only a signed-in request waits for the database (see
    // `graphql::execute`).
    match Box::pin(identity::load_viewer(&services.db, user_id)).await {
        Ok(viewer) => Ok(Auth::User(viewer)),
        Err(DomainError::Unauthenticated) => Ok(Auth::Invalid),
        Err(err) => Err(err),
    }
}
