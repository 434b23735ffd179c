//! GraphQL over HTTP: the few operations the scenarios need, every response
//! checked for errors.

use anyhow::{Context, Result, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";

/// A client of one server, signed in or not, on one keep-alive pool.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

/// A signed-in user.
pub struct Session {
    /// The email it signed up with.
    pub email: String,
    /// Bearer token.
    pub token: String,
    /// The user's GraphQL id.
    pub user_id: String,
}

/// Which way a role changes.
#[derive(Clone, Copy, Debug)]
pub enum RoleChange {
    /// `grantRole`.
    Grant,
    /// `revokeRole`.
    Revoke,
}

impl Api {
    /// An anonymous client of the server at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Result<Self> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    /// The bearer token this client sends, if signed in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client, sending `token` as its bearer.
    pub fn signed_in(self, token: String) -> Self {
        Self {
            token: Some(token),
            ..self
        }
    }

    /// `GET /health/live`, which must answer 200 `ok`.
    pub async fn live(&self) -> Result<()> {
        let response = self
            .client
            .get(format!("{}/health/live", self.base_url))
            .send()
            .await
            .context("GET /health/live")?;
        let status = response.status();
        let body = response.text().await.context("reading /health/live")?;
        ensure!(
            status == StatusCode::OK && body == "ok",
            "/health/live answered {status}: {body}"
        );
        Ok(())
    }

    /// Runs one operation; its `data`, or an error for any HTTP or GraphQL error.
    pub async fn execute(&self, query: &str, variables: Value) -> Result<Value> {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.context("POST /graphql")?;
        let status = response.status();
        let body = response.text().await.context("reading /graphql")?;
        data_of(status, &body)
    }

    /// Registers a new user with a unique email.
    pub async fn register(&self) -> Result<Session> {
        let email = format!("bench-{}@bench.local", uuid::Uuid::new_v4().simple());
        let input =
            json!({ "email": email, "password": "bench-password-1", "displayName": "Bench User" });
        let data = self
            .execute(REGISTER, json!({ "i": input }))
            .await
            .context("register")?;
        Ok(Session {
            email,
            token: string_at(&data, "/register/token")?,
            user_id: string_at(&data, "/register/user/id")?,
        })
    }

    /// Signs in; the bearer token. Logins are rate limited: call it once.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let data = self
            .execute(LOGIN, json!({ "e": email, "p": password }))
            .await
            .with_context(|| format!("login as {email}"))?;
        string_at(&data, "/login/token")
    }

    /// Grants or revokes `role` (e.g. `HOST`) of `user_id`; needs an admin.
    pub async fn change_role(&self, change: RoleChange, user_id: &str, role: &str) -> Result<()> {
        let field = match change {
            RoleChange::Grant => "grantRole",
            RoleChange::Revoke => "revokeRole",
        };
        let query =
            format!("mutation($u: ID!, $r: Role!) {{ {field}(userId: $u, role: $r) {{ id }} }}");
        self.execute(&query, json!({ "u": user_id, "r": role }))
            .await
            .with_context(|| format!("{field} {role}"))?;
        Ok(())
    }
}

/// The `data` of a GraphQL response: the status must be 200, with no
/// `errors` and non-null data.
fn data_of(status: StatusCode, body: &str) -> Result<Value> {
    ensure!(status == StatusCode::OK, "HTTP {status}: {body}");
    let mut response: Value =
        serde_json::from_str(body).with_context(|| format!("response is not JSON: {body}"))?;
    if let Some(errors) = response.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    match response.get_mut("data").map(Value::take) {
        Some(data) if !data.is_null() => Ok(data),
        _ => bail!("response has no data: {body}"),
    }
}

/// The string at JSON `pointer` (e.g. `/platform/currency`) in `value`.
pub fn string_at(value: &Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string at {pointer} in {value}"))
}
