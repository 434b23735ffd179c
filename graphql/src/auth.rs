//! Per-request facts attached to every GraphQL request by the HTTP and
//! WebSocket layers, and the guards resolvers use.

use async_graphql::Context;
use giftdrop_domain::identity::staff::Reach;
use giftdrop_domain::{DomainError, RequestMeta, Services, Viewer, identity::Role};

use crate::error::Gql;

/// Who sent the request, as resolved by the transport before execution.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials.
    Anonymous,
    /// Credentials were sent but are invalid or expired.
    Invalid,
    /// A signed-in user.
    User(Viewer),
}

/// Everything per-request: auth, correlation id, client address.
#[derive(Clone, Debug)]
pub struct RequestData {
    /// Who is asking.
    pub auth: Auth,
    /// Correlation id and friends.
    pub meta: RequestMeta,
    /// The client's IP address, for per-IP limits.
    pub client_ip: String,
    /// The viewer's merchant reach, read from the database on first use
    /// and then shared by every resolver of the request.
    pub reach: tokio::sync::OnceCell<Reach>,
}

impl RequestData {
    /// Request data for `auth`.
    pub fn new(auth: Auth, meta: RequestMeta, client_ip: String) -> Self {
        Self {
            auth,
            meta,
            client_ip,
            reach: tokio::sync::OnceCell::new(),
        }
    }
}

/// The request data; missing only if a transport forgot to attach it, which
/// is a bug reported as `INTERNAL`.
pub fn request<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestData> {
    ctx.data::<RequestData>()
        .map_err(|_| {
            DomainError::Internal(anyhow::anyhow!(
                "request data missing from the GraphQL context"
            ))
        })
        .gql()
}

/// The process services.
pub fn services<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Services> {
    ctx.data::<Services>()
        .map_err(|_| {
            DomainError::Internal(anyhow::anyhow!("services missing from the GraphQL schema"))
        })
        .gql()
}

/// The signed-in viewer, `None` when anonymous, `UNAUTHENTICATED` when the
/// sent credentials are invalid (so a front end learns its token expired).
pub fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<Option<&'a Viewer>> {
    match &request(ctx)?.auth {
        Auth::Anonymous => Ok(None),
        Auth::Invalid => Err(DomainError::Unauthenticated).gql(),
        Auth::User(viewer) => Ok(Some(viewer)),
    }
}

/// The signed-in viewer, or `UNAUTHENTICATED`.
pub fn require_viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    viewer(ctx)?.ok_or(DomainError::Unauthenticated).gql()
}

/// A signed-in viewer holding `role`, else `UNAUTHENTICATED` / `FORBIDDEN`.
pub fn require_role<'a>(ctx: &Context<'a>, role: Role) -> async_graphql::Result<&'a Viewer> {
    let viewer = require_viewer(ctx)?;
    viewer.require(role).gql()?;
    Ok(viewer)
}

/// What the viewer may see and do for merchants (admin, staff of which),
/// looked up once per request.
pub async fn reach<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Reach> {
    let data = request(ctx)?;
    let viewer = viewer(ctx)?;
    let db = &services(ctx)?.db;
    data.reach
        .get_or_try_init(|| Reach::of(db, viewer))
        .await
        .gql()
}
