//! What `APP_ENV=production` refuses, how `/metrics` is protected, whose
//! address the per-IP rate limit counts behind a proxy, and the bootstrap
//! admin when several processes start at once.

use giftdrop::app::{self, Mode, Running};
use giftdrop::cli::Command;
use giftdrop::config::TrustedProxies;
use giftdrop::config::{Config, PaymentProvider, is_published_secret};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{ADMIN_EMAIL, AppOptions, PASSWORD, TestApp, code, scalar};

/// A fresh secret nobody has seen: 64 hex characters.
fn fresh_secret() -> SecretString {
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    SecretString::from(random)
}

/// A test app's configuration (its own fresh database and namespace),
/// changed by `change`.
async fn config_with(change: impl FnOnce(&mut Config)) -> Config {
    let mut captured = None;
    let _options = AppOptions::new().await.config(|c| {
        change(c);
        captured = Some(c.clone());
    });
    captured.expect("the configuration was captured")
}

/// A production configuration that may start: a real (unreachable, never
/// called at start) provider, SMTP and verifier, fresh secrets, and a
/// bearer token on `/metrics`. For every test of production behaviour.
pub fn safe_production(c: &mut Config) {
    c.app_env = giftdrop::config::AppEnv::Production;
    c.payment_provider = PaymentProvider::Http;
    c.payment_provider_url = Some("http://127.0.0.1:9/v1/".to_owned());
    c.payment_provider_secret = Some(fresh_secret());
    c.payment_webhook_secret = Some(fresh_secret());
    c.jwt_secret = Some(fresh_secret());
    c.card_secret = Some(fresh_secret());
    c.admin_password = Some(fresh_secret());
    c.metrics_token = Some(fresh_secret());
    c.smtp_url = Some(SecretString::from("smtp://127.0.0.1:2525"));
    c.social_verifier_url = Some("http://127.0.0.1:9/verify".to_owned());
}

/// Starts `mode` with `config`, then stops it: the start error, formatted
/// with its causes, if any.
async fn start_error(config: Config, command: Command) -> Option<String> {
    giftdrop::install_crypto_provider();
    let shutdown = CancellationToken::new();
    let result = app::start(config, Mode::from(command), shutdown.clone()).await;
    shutdown.cancel();
    match result {
        Ok(running) => {
            running.stopped().await.expect("stops cleanly");
            None
        }
        Err(err) => Some(format!("{err:#}")),
    }
}

/// The start error of a production configuration changed by `change`.
async fn production_error(change: impl FnOnce(&mut Config)) -> Option<String> {
    let config = config_with(|c| {
        safe_production(c);
        change(c);
    })
    .await;
    start_error(config, Command::Serve).await
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_safe_production_configuration_starts() {
    assert_eq!(production_error(|_| {}).await, None);
}

#[tokio::test(crate = "crate::support::harness")]
async fn production_refuses_the_sandbox_payment_provider() {
    let error = production_error(|c| c.payment_provider = PaymentProvider::Sandbox)
        .await
        .expect("refused with PAYMENT_PROVIDER=sandbox");
    assert!(error.contains("PAYMENT_PROVIDER=sandbox"), "{error}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn production_requires_a_jwt_secret_of_at_least_32_bytes() {
    for (secret, expected) in [
        (None, "JWT_SECRET must be set"),
        (Some(""), "JWT_SECRET must be set"),
        (Some("0123456789abcdef0123456789abcde"), "at least 32 bytes"),
    ] {
        let error = production_error(|c| c.jwt_secret = secret.map(SecretString::from))
            .await
            .unwrap_or_else(|| panic!("refused with JWT_SECRET {secret:?}"));
        assert!(error.contains(expected), "{secret:?}: {error}");
    }
    let exactly_32 = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        production_error(|c| c.jwt_secret = Some(SecretString::from(exactly_32))).await,
        None
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn production_refuses_every_secret_published_in_the_repository_at_once() {
    let error = production_error(|c| {
        c.jwt_secret = Some(SecretString::from("change-me-in-production-0123456789"));
        c.card_secret = Some(SecretString::from("change-me-in-production-card-secret"));
        c.admin_password = Some(SecretString::from("change-me-please"));
        c.payment_webhook_secret = Some(SecretString::from("whsec_9a8b7c6d5e4f3210"));
        c.metrics_token = Some(SecretString::from(PASSWORD));
    })
    .await
    .expect("refused with published secrets");
    for name in [
        "JWT_SECRET",
        "CARD_SECRET",
        "ADMIN_PASSWORD",
        "PAYMENT_WEBHOOK_SECRET",
        "METRICS_TOKEN",
    ] {
        assert!(
            error.contains(&format!("{name} is a value published")),
            "{name}: {error}"
        );
    }
}

/// `(name, default)` of every `${NAME:-default}` in `text`.
fn compose_defaults(text: &str) -> Vec<(String, String)> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .filter_map(|(inside, _)| inside.split_once(":-"))
        .map(|(name, default)| (name.to_owned(), default.to_owned()))
        .collect()
}

fn looks_secret(name: &str) -> bool {
    ["SECRET", "PASSWORD", "TOKEN"]
        .iter()
        .any(|word| name.contains(word))
}

#[test]
fn every_secret_default_of_the_compose_file_and_env_example_is_refused_in_production() {
    let root = env!("CARGO_MANIFEST_DIR");
    let compose = std::fs::read_to_string(format!("{root}/docker-compose.yml"))
        .expect("docker-compose.yml is readable");
    let example =
        std::fs::read_to_string(format!("{root}/.env.example")).expect(".env.example is readable");
    let from_example = example
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()));
    let secrets: Vec<(String, String)> = compose_defaults(&compose)
        .into_iter()
        .chain(from_example)
        .filter(|(name, _)| looks_secret(name))
        .collect();
    assert!(
        secrets.iter().any(|(name, _)| name == "JWT_SECRET"),
        "the compose file's secrets were found: {secrets:?}"
    );
    for (name, value) in secrets.iter().filter(|(_, value)| !value.is_empty()) {
        assert!(
            is_published_secret(value),
            "{name}'s default {value:?} is published: add it to PUBLISHED_SECRETS"
        );
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn production_refuses_public_metrics_unless_a_token_or_their_own_address_protects_them() {
    let error = production_error(|c| c.metrics_token = None)
        .await
        .expect("refused with /metrics public");
    assert!(
        error.contains("METRICS_TOKEN") && error.contains("METRICS_ADDR"),
        "{error}"
    );
    let own_address = production_error(|c| {
        c.metrics_token = None;
        c.metrics_addr = Some("127.0.0.1:0".parse().expect("an address"));
    })
    .await;
    assert_eq!(own_address, None);
    // A worker answers no HTTP at all.
    let worker = config_with(|c| {
        safe_production(c);
        c.metrics_token = None;
    })
    .await;
    assert_eq!(start_error(worker, Command::Worker).await, None);
}

#[tokio::test(crate = "crate::support::harness")]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let app = AppOptions::new()
        .await
        .config(|c| c.metrics_token = Some(SecretString::from("scrape-token-0123456789")))
        .quiet()
        .spawn()
        .await;
    let get = |token: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let anonymous = get(None).await.expect("sent");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = get(Some("scrape-token-0123456780")).await.expect("sent");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = get(Some("scrape-token-0123456789")).await.expect("sent");
    assert_eq!(right.status(), StatusCode::OK);
    let text = right.text().await.expect("a body");
    assert!(text.contains("giftdrop_http_requests_total"), "{text}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn metrics_addr_serves_metrics_there_and_not_on_the_api_listener() {
    let app = AppOptions::new()
        .await
        .config(|c| c.metrics_addr = Some("127.0.0.1:0".parse().expect("an address")))
        .quiet()
        .spawn()
        .await;
    let on_api = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    let metrics_addr = app.running().metrics_addr.expect("a metrics listener");
    let own = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(own.status(), StatusCode::OK);
}

/// A failed login of a fresh email, as if forwarded for `forwarded_for`;
/// its error code. Only the per-IP window can refuse it.
async fn login_forwarded(app: &TestApp, forwarded_for: &str) -> String {
    let query = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let body: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "query": query, "variables": { "e": email, "p": "wrong-password-1" } }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    code(&body).to_owned()
}

async fn app_behind(trusted: &str) -> TestApp {
    let trusted = TrustedProxies::parse(trusted).expect("valid proxies");
    AppOptions::new()
        .await
        .config(|c| {
            c.rate_limits = "login=2/300".into();
            c.trusted_proxies = trusted;
        })
        .quiet()
        .spawn()
        .await
}

#[tokio::test(crate = "crate::support::harness")]
async fn without_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_login_limit() {
    let app = app_behind("").await;
    assert_eq!(
        login_forwarded(&app, "198.51.100.1").await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        login_forwarded(&app, "198.51.100.2").await,
        "UNAUTHENTICATED"
    );
    assert_eq!(login_forwarded(&app, "198.51.100.3").await, "RATE_LIMITED");
}

#[tokio::test(crate = "crate::support::harness")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_limit() {
    let app = app_behind("127.0.0.1").await;
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(login_forwarded(&app, client).await, "UNAUTHENTICATED");
    }
    // The same client again: its own window fills, whatever it prepends.
    assert_eq!(
        login_forwarded(&app, "198.51.100.1").await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        login_forwarded(&app, "203.0.113.77, 198.51.100.1").await,
        "RATE_LIMITED"
    );
}

/// Stops `running` and checks that none of its parts failed.
async fn stop(running: Running, shutdown: &CancellationToken) {
    shutdown.cancel();
    running.stopped().await.expect("every part stopped cleanly");
}

#[tokio::test(
    flavor = "multi_thread",
    worker_threads = 4,
    crate = "crate::support::harness"
)]
async fn two_apis_and_two_workers_start_at_once_with_one_admin_whose_password_survives_restarts() {
    giftdrop::install_crypto_provider();
    let config = config_with(|_| {}).await;
    let shutdown = CancellationToken::new();
    let mut starts = tokio::task::JoinSet::new();
    for command in [
        Command::Serve,
        Command::Serve,
        Command::Worker,
        Command::Worker,
    ] {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        starts.spawn(async move { app::start(config, Mode::from(command), shutdown).await });
    }
    let mut started = Vec::new();
    while let Some(joined) = starts.join_next().await {
        let running = joined.expect("no start panicked");
        started.push(running.unwrap_or_else(|err| panic!("a process failed to start: {err:#}")));
    }
    assert_eq!(started.len(), 4);
    let db = started[0].services.db.clone();
    let admins = format!(
        "SELECT count(*) FROM identity.users u JOIN identity.user_roles r ON r.user_id = u.id \
         AND r.role = 'ADMIN' WHERE u.email = '{ADMIN_EMAIL}'"
    );
    assert_eq!(scalar(&db, &admins).await, 1);
    assert_eq!(scalar(&db, "SELECT count(*) FROM identity.users").await, 1);
    for running in started {
        stop(running, &shutdown).await;
    }

    // A restart with another ADMIN_PASSWORD keeps the first one.
    let restarted = config.clone();
    let app = AppOptions::new()
        .await
        .config(move |c| {
            *c = restarted;
            c.admin_password = Some(SecretString::from("a-different-password-2"));
        })
        .quiet()
        .spawn()
        .await;
    assert!(
        !app.admin_token().await.is_empty(),
        "the first password works"
    );
    let other = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": ADMIN_EMAIL, "p": "a-different-password-2" }),
        )
        .await;
    assert_eq!(code(&other), "UNAUTHENTICATED");
    assert_eq!(scalar(&app.db, &admins).await, 1);
}
