//! The payment provider's side of HTTP: the signed webhook
//! (`POST /webhooks/payments`) and, with `PAYMENT_PROVIDER=sandbox` only,
//! the sandbox checkout (`/sandbox/checkout/{reference}`, `.../pay`,
//! `.../fail`) and its knobs (`/sandbox/settings`).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use giftdrop_domain::RequestMeta;
use giftdrop_domain::Services;
use giftdrop_domain::payments::sandbox::{self, Outcome, SandboxProvider};
use giftdrop_domain::payments::topup::{self, TopupStatus};
use giftdrop_domain::payments::webhook::{self, Received, Refused};
use serde_json::json;

use crate::http::correlation::CorrelationId;

fn meta(correlation: CorrelationId) -> RequestMeta {
    RequestMeta {
        correlation_id: correlation.0,
    }
}

/// The status and body of a webhook outcome.
fn answer(result: &Result<Received, Refused>) -> Response {
    let (status, outcome) = match result {
        Ok(Received::Credited) => (StatusCode::OK, "credited"),
        Ok(Received::MarkedFailed) => (StatusCode::OK, "failed"),
        Ok(Received::Duplicate) => (StatusCode::OK, "duplicate"),
        Ok(Received::Ignored) => (StatusCode::OK, "ignored"),
        Err(Refused::BadSignature) => (StatusCode::UNAUTHORIZED, "bad_signature"),
        Err(Refused::Malformed(_)) => (StatusCode::BAD_REQUEST, "malformed"),
        Err(Refused::UnknownReference) => (StatusCode::NOT_FOUND, "unknown_reference"),
        Err(Refused::AmountMismatch) => (StatusCode::UNPROCESSABLE_ENTITY, "amount_mismatch"),
        Err(Refused::Internal(err)) => {
            tracing::error!(error = ?err, "payment webhook failed; the provider will retry");
            (StatusCode::INTERNAL_SERVER_ERROR, "error")
        }
    };
    let mut body = json!({ "outcome": outcome });
    if let Err(Refused::Malformed(why)) = result {
        body["message"] = json!(why);
    }
    (status, Json(body)).into_response()
}

/// `POST /webhooks/payments`.
pub async fn webhook(
    State(services): State<Services>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let result = webhook::receive(&services, &meta(correlation), &body, signature).await;
    answer(&result)
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// `GET /sandbox/checkout/{reference}`: a checkout page with Pay and Fail.
pub async fn checkout_page(
    State(services): State<Services>,
    Path(reference): Path<String>,
) -> Response {
    let found = match topup::find_by_reference(&services.db, &reference).await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = ?err, "sandbox checkout page failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let Some(found) = found else {
        return (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>Not found</title><p>No payment has this reference.</p>"),
        )
            .into_response();
    };
    let settings = &services.settings;
    let fee = found.amount.bps_half_up(settings.deposit_fee_bps);
    let path = escape(&SandboxProvider::checkout_path(&found.reference));
    let status = match found.status {
        TopupStatus::Pending => "PENDING",
        TopupStatus::Succeeded => "SUCCEEDED",
        TopupStatus::Failed => "FAILED",
    };
    let actions = if found.status == TopupStatus::Pending {
        format!(
            r#"<form method="post" action="{path}/pay"><button>Pay</button></form>
<form method="post" action="{path}/fail"><button>Fail</button></form>"#
        )
    } else {
        String::new()
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>giftdrop sandbox checkout</title></head>
<body>
<h1>Sandbox checkout</h1>
<p>This page plays the payment provider. No real money moves.</p>
<dl>
<dt>Reference</dt><dd>{reference}</dd>
<dt>Amount</dt><dd>{amount} {currency} (minor units)</dd>
<dt>Provider fee</dt><dd>{fee}</dd>
<dt>Status</dt><dd>{status}</dd>
</dl>
{actions}
</body></html>"#,
        reference = escape(&found.reference),
        amount = found.amount,
        currency = escape(&settings.currency),
    ))
    .into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

async fn complete(
    services: &Services,
    correlation: CorrelationId,
    headers: &HeaderMap,
    reference: &str,
    outcome: Outcome,
) -> Response {
    let result = sandbox::complete(services, &meta(correlation), reference, outcome).await;
    if wants_html(headers) && result.is_ok() {
        // A browser on the checkout page: show the page again.
        return Redirect::to(&SandboxProvider::checkout_path(reference)).into_response();
    }
    answer(&result)
}

/// `POST /sandbox/checkout/{reference}/pay`: sends the signed
/// `charge.success` webhook.
pub async fn pay(
    State(services): State<Services>,
    Extension(correlation): Extension<CorrelationId>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    complete(&services, correlation, &headers, &reference, Outcome::Pay).await
}

/// `POST /sandbox/checkout/{reference}/fail`: sends `charge.failed`.
pub async fn fail(
    State(services): State<Services>,
    Extension(correlation): Extension<CorrelationId>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    complete(&services, correlation, &headers, &reference, Outcome::Fail).await
}

/// `GET /sandbox/settings`: the sandbox's latency and failure knobs.
pub async fn settings(State(services): State<Services>) -> Response {
    match &services.payments.sandbox {
        Some(knobs) => Json(knobs.get()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /sandbox/settings` (JSON `{"latencyMs": 0, "failurePercent": 0,
/// "lostAnswerPercent": 0}`, the last optional): changes the knobs of this
/// process's sandbox, so a front end or a load test can see slow and
/// failing payments, and payouts whose answer is lost. Sandbox only, like every
/// `/sandbox` route.
pub async fn change_settings(
    State(services): State<Services>,
    Json(settings): Json<sandbox::KnobSettings>,
) -> Response {
    match &services.payments.sandbox {
        Some(knobs) => {
            knobs.set(settings);
            tracing::warn!(?settings, "sandbox provider knobs changed");
            Json(knobs.get()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
