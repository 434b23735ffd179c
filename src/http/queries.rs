//! What identical queries in flight share ([`Coalescer`]): the key that
//! says two requests ask the same thing of the same viewer, and the answer
//! every request of a round gets.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use giftdrop_domain::identity::Role;
use giftdrop_graphql::auth::Auth;
use giftdrop_graphql::operation;
use uuid::Uuid;

use giftdrop_domain::coalesce::Coalescer;

/// Identical queries in flight, sharing one execution.
pub type Queries = Coalescer<Query, Arc<Answer>>;

/// True when the operation `request` selects in `document` is a query. A
/// document that does not parse or selects no operation counts as a query:
/// execution then reports why, and runs nothing.
pub fn is_query(request: &async_graphql::Request, document: Option<&ExecutableDocument>) -> bool {
    let Some(document) = document else {
        return true;
    };
    operation::selected(document, request.operation_name.as_deref())
        .is_none_or(|op| op.node.ty == OperationType::Query)
}

/// What identical queries in flight share: who asks (the same user with
/// the same roles, or anonymous), the document, the operation and the
/// variables. Also the key of a kept answer
/// ([`Pages`](crate::http::pages::Pages)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    who: Option<(Uuid, Vec<Role>)>,
    invalid: bool,
    document: String,
    operation: Option<String>,
    variables: String,
}

impl Query {
    /// The key of `request` from `auth`; `None` for anything but a query
    /// (mutations and subscriptions never share), and for a request with
    /// extensions (nothing reads them today; never guess what they mean).
    pub fn key(
        auth: &Auth,
        request: &async_graphql::Request,
        document: Option<&ExecutableDocument>,
    ) -> Option<Self> {
        if !request.extensions.is_empty() || !is_query(request, document) {
            return None;
        }
        Some(Self {
            who: match auth {
                Auth::User(viewer) => Some((viewer.user_id, viewer.roles.clone())),
                Auth::Anonymous | Auth::Invalid => None,
            },
            invalid: matches!(auth, Auth::Invalid),
            document: request.query.clone(),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
        })
    }
}

/// A query's response as every request of its round is answered.
pub struct Answer {
    /// Its headers, as async-graphql-axum's [`GraphQLResponse`] sets them.
    pub headers: HeaderMap,
    /// Its JSON body.
    pub body: Bytes,
    /// It has errors.
    pub errors: bool,
    /// An `INTERNAL` error is in it, with the round's correlation id.
    pub internal: bool,
    /// The correlation id of the request whose execution this is.
    pub correlation: String,
}

impl Answer {
    /// The answer of `response`, the execution of the request with
    /// `correlation`.
    pub async fn of(response: async_graphql::Response, correlation: String) -> Self {
        let errors = !response.errors.is_empty();
        let internal = response.errors.iter().any(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .is_some_and(|code| *code == async_graphql::Value::from("INTERNAL"))
        });
        let (parts, body) = GraphQLResponse::from(response).into_response().into_parts();
        // The body is one string in memory: nothing here waits.
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Self {
            headers: parts.headers,
            body,
            errors,
            internal,
            correlation,
        }
    }
}
