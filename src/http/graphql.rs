//! GraphQL over HTTP: `POST /graphql` (JSON only, one operation per
//! request) and `GET /graphql` (GraphiQL for browsers, queries only).

use async_graphql::ServerError;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use giftdrop_domain::RequestMeta;
use giftdrop_graphql::auth::RequestData;
use giftdrop_graphql::error::{finish_errors, to_graphql};
use giftdrop_graphql::operation;

use crate::http::auth::resolve_auth;
use crate::http::client_ip::ClientIp;
use crate::http::correlation::CorrelationId;
use crate::http::errors::error_response;
use crate::http::state::AppState;

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.eq_ignore_ascii_case("application/graphql-response+json")
        })
}

/// `POST /graphql`.
pub async fn post(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST /graphql takes Content-Type: application/json",
        );
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Batched operations are not supported: send one operation per request",
        );
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The body must be a JSON object with a `query` string, and optional `variables` and `operationName`",
            );
        }
    };
    if let Err(error) = state.documents.prepare(&mut request) {
        return refused(error);
    }
    execute(&state, request, &headers, correlation, client).await
}

/// A request refused before execution, as GraphQL answers it (200 with
/// `errors`, each with its code): an over-limit document, a NUL in a
/// string.
fn refused(error: ServerError) -> Response {
    Json(async_graphql::Response::from_errors(vec![error])).into_response()
}

/// `GET /graphql`: GraphiQL for browsers; otherwise a query from the query
/// string. Mutations never run over GET (405).
pub async fn get(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    client: ClientIp,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let query = query.unwrap_or_default();
    if wants_html && query.is_empty() && state.graphiql {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .title("giftdrop GraphiQL")
                .finish(),
        )
        .into_response();
    }
    let Some(mut request) = from_query_string(&query) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Pass `query` (and optional `variables`, `operationName`) in the query string",
        );
    };
    if let Err(error) = state.documents.prepare(&mut request) {
        return refused(error);
    }
    if !is_query(&mut request) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Only queries may be sent with GET; send mutations with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, request, &headers, correlation, client).await
}

/// The parameters of a GraphQL request sent with GET, named as the
/// GraphQL-over-HTTP spec names them (async-graphql's own parser reads
/// `operation_name`, which no client sends).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
}

/// The request a GET query string carries; `None` when it is not one. An
/// empty `operationName` means none.
fn from_query_string(query: &str) -> Option<async_graphql::Request> {
    let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
    let axum::extract::Query(params) =
        axum::extract::Query::<GetParams>::try_from_uri(&uri).ok()?;
    let mut request = async_graphql::Request::new(params.query);
    request.operation_name = params.operation_name.filter(|name| !name.is_empty());
    if let Some(variables) = params.variables {
        request.variables = serde_json::from_str(&variables).ok()?;
    }
    Some(request)
}

/// True when the operation the request selects is a query. A document that
/// does not parse or selects no operation counts as a query: execution then
/// reports why, and runs nothing. The parse is kept for execution.
fn is_query(request: &mut async_graphql::Request) -> bool {
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return true;
    };
    operation::selected(document, operation_name.as_deref())
        .is_none_or(|op| op.node.ty == OperationType::Query)
}

async fn execute(
    state: &AppState,
    request: async_graphql::Request,
    headers: &HeaderMap,
    correlation: CorrelationId,
    client: ClientIp,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let meta = RequestMeta {
        correlation_id: correlation.0,
    };
    let auth = match resolve_auth(&state.services, authorization).await {
        Ok(auth) => auth,
        Err(err) => {
            let error = to_graphql(err);
            let mut server_error = async_graphql::ServerError::new(error.message, None);
            let mut extensions = error.extensions.unwrap_or_default();
            extensions.set("correlationId", meta.correlation_id.as_str());
            server_error.extensions = Some(extensions);
            return Json(async_graphql::Response::from_errors(vec![server_error])).into_response();
        }
    };
    let correlation = meta.correlation_id.clone();
    let data = RequestData::new(auth, meta, client.to_string());
    let mut response = state.schema.execute(request.data(data)).await;
    finish_errors(&mut response, &correlation);
    Json(response).into_response()
}
