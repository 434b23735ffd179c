//! GraphQL over HTTP: `POST /graphql` (JSON only, one operation per
//! request) and `GET /graphql` (GraphiQL for browsers, queries only).
//!
//! Requests are read as async-graphql reads them (a POST body with
//! [`receive_json`](async_graphql::http::receive_json), a GET query string
//! with async-graphql-axum's [`GraphQLRequest`]) and answered with its
//! [`GraphQLResponse`]; around them, our checks: a JSON body only
//! (415), no batches (async-graphql reads them, we refuse them: 400), no
//! mutation over GET (405), the document cache with its shape limits and
//! string checks, who is asking, the correlation id on internal errors.
//! Identical queries in flight share one execution
//! ([`Coalescer`](giftdrop_domain::coalesce::Coalescer): never
//! one that started before they arrived), and an event page is answered
//! from memory while the versions of the events it read stand
//! ([`Pages`]).

use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use async_graphql::{ParseRequestError, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use giftdrop_domain::{DomainError, RequestMeta};
use giftdrop_graphql::auth::RequestData;
use giftdrop_graphql::error::{finish_errors, to_graphql};

use crate::http::auth::resolve_auth;
use crate::http::client_ip::ClientIp;
use crate::http::correlation::CorrelationId;
use crate::http::documents::Prepared;
use crate::http::errors::error_response;
use crate::http::pages::Pages;
use crate::http::queries::{Answer, Query, is_query};
use crate::http::state::AppState;

/// The media type of GraphQL responses, for clients that ask for it.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.eq_ignore_ascii_case(GRAPHQL_RESPONSE)
        })
}

/// Why async-graphql-axum's extractor refused a request.
struct Unreadable(ParseRequestError);

impl From<ParseRequestError> for Unreadable {
    fn from(error: ParseRequestError) -> Self {
        Self(error)
    }
}

impl IntoResponse for Unreadable {
    fn into_response(self) -> Response {
        error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Unreadable GraphQL request",
        )
    }
}

/// `request` read by [`GraphQLRequest`].
async fn read(request: Request) -> Result<async_graphql::Request, ParseRequestError> {
    GraphQLRequest::<Unreadable>::from_request(request, &())
        .await
        .map(GraphQLRequest::into_inner)
        .map_err(|Unreadable(error)| error)
}

/// `POST /graphql`. The body is read under the router's body limit (413).
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
    // The body is in memory already: read as async-graphql-axum's
    // extractor reads a JSON body, without a second copy of the request.
    let request = match async_graphql::http::receive_json(&body[..]).await {
        Ok(request) => request,
        Err(ParseRequestError::UnsupportedBatch) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Batched operations are not supported: send one operation per request",
            );
        }
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The body must be a JSON object with a `query` string, and optional `variables` and `operationName`",
            );
        }
    };
    let prepared = match state.documents.prepare(&request) {
        Ok(prepared) => prepared,
        Err(error) => return refused(&headers, error),
    };
    execute(&state, request, prepared, &headers, correlation, client).await
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
    let mut get = Request::new(Body::empty());
    if let Ok(uri) = format!("/graphql?{}", spec_names(&query)).parse() {
        *get.uri_mut() = uri;
    }
    let Ok(mut request) = read(get).await else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Pass `query` (and optional `variables`, `operationName`) in the query string",
        );
    };
    // An empty name is none.
    request.operation_name = request.operation_name.filter(|name| !name.is_empty());
    let prepared = match state.documents.prepare(&request) {
        Ok(prepared) => prepared,
        Err(error) => return refused(&headers, error),
    };
    if !is_query(&request, prepared.document()) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Only queries may be sent with GET; send mutations with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, request, prepared, &headers, correlation, client).await
}

/// `query` with its `operationName` parameter named as async-graphql's
/// query-string parser reads it (`operation_name`, which no client sends:
/// the GraphQL-over-HTTP spec and every client name it `operationName`).
fn spec_names(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.strip_prefix("operationName") {
            Some(rest) if rest.is_empty() || rest.starts_with('=') => {
                format!("operation_name{rest}")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request refused before execution, as GraphQL answers it (200 with
/// `errors`, each with its code): an over-limit document, a NUL in a
/// string.
fn refused(headers: &HeaderMap, error: ServerError) -> Response {
    respond(headers, async_graphql::Response::from_errors(vec![error]))
}

/// `response` through [`GraphQLResponse`], as `application/json` unless
/// the client accepts `application/graphql-response+json` (the
/// GraphQL-over-HTTP spec's legacy rule: clients that name only JSON, or
/// nothing, get JSON).
fn respond(headers: &HeaderMap, response: async_graphql::Response) -> Response {
    let mut response = GraphQLResponse::from(response).into_response();
    negotiate(headers, &mut response);
    response
}

/// The content type of `response` for a client that sent `headers`.
fn negotiate(headers: &HeaderMap, response: &mut Response) {
    let accepts_graphql = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains(GRAPHQL_RESPONSE));
    if !accepts_graphql {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
}

/// A request that failed outside execution, answered as one error with its
/// contract code and the request's correlation id.
fn failure(headers: &HeaderMap, err: DomainError, correlation: &str) -> Response {
    let error = to_graphql(err);
    let mut server_error = ServerError::new(error.message, None);
    let mut extensions = error.extensions.unwrap_or_default();
    extensions.set("correlationId", correlation);
    server_error.extensions = Some(extensions);
    respond(
        headers,
        async_graphql::Response::from_errors(vec![server_error]),
    )
}

/// Executes `request`, or answers it from a kept page or a round in
/// flight. Whatever waits beyond the answer from memory is boxed (an
/// execution, a round, a viewer's or a version's read): a future holds
/// room for its largest await, and every request's future is allocated
/// and copied whole, so inline they made the answer from memory carry
/// 3.9 KB rather than 1.2 KB.
async fn execute(
    state: &AppState,
    mut request: async_graphql::Request,
    prepared: Prepared,
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
        Err(err) => return failure(headers, err, &meta.correlation_id),
    };
    let correlation = meta.correlation_id.clone();
    let Some(key) = Query::key(&auth, &request, prepared.document()) else {
        prepared.attach(&mut request);
        let request = request.data(RequestData::new(auth, meta, client.to_string()));
        let mut response = Box::pin(state.schema.execute(request)).await;
        finish_errors(&mut response, &correlation);
        return respond(headers, response);
    };
    let versions = Pages::versions(&state.services.db, &request, prepared.document()).await;
    if let Some(versions) = &versions
        && let Some(answer) = state.pages.get(&key, versions)
    {
        return reply(headers, &answer);
    }
    prepared.attach(&mut request);
    let request = request.data(RequestData::new(auth, meta, client.to_string()));
    let (schema, pages) = (state.schema.clone(), Arc::clone(&state.pages));
    let kept = versions.map(|versions| (key.clone(), versions));
    let leader = correlation.clone();
    let joined = Box::pin(state.queries.run(key, move || async move {
        let mut response = schema.execute(request).await;
        finish_errors(&mut response, &leader);
        let answer = Arc::new(Answer::of(response, leader).await);
        if let Some((key, versions)) = kept {
            pages.keep(key, versions, &answer);
        }
        answer
    }))
    .await;
    let Some(answer) = joined.value else {
        // The round panicked (logged by the panic hook).
        let panicked = DomainError::Internal(anyhow::anyhow!("a shared query execution panicked"));
        return failure(headers, panicked, &correlation);
    };
    if answer.internal && !joined.led {
        // Its own correlation id on the INTERNAL errors, and the log line
        // that leads from it to the round's.
        tracing::warn!(round = %answer.correlation, "answered by a round that failed");
        if let Ok(mut response) = serde_json::from_slice::<async_graphql::Response>(&answer.body) {
            finish_errors(&mut response, &correlation);
            return respond(headers, response);
        }
    }
    reply(headers, &answer)
}

/// `answer` as the response to a request with `headers`.
fn reply(headers: &HeaderMap, answer: &Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.headers_mut() = answer.headers.clone();
    negotiate(headers, &mut response);
    response
}
