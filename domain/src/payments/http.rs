//! A client for a real provider's REST API (`PAYMENT_PROVIDER=http`).
//!
//! The API it speaks (docs/PAYMENTS.md):
//!
//! ```text
//! POST {base}/checkouts
//! Authorization: Bearer {secret}
//! Idempotency-Key: {reference}
//! {"reference":"tp_…","amount":"250000","currency":"NGN","email":"a@b.c"}
//!
//! 200/201 {"checkoutUrl":"https://pay.example/…"}
//! ```
//!
//! ```text
//! POST {base}/transfers
//! Authorization: Bearer {secret}
//! Idempotency-Key: {reference}
//! {"reference":"po_…","amount":"100000","currency":"NGN","destination":"0123456789"}
//!
//! 200/201 {"status":"accepted"}   or   {"status":"declined","reason":"…"}
//!
//! GET {base}/transfers/{reference}
//! Authorization: Bearer {secret}
//!
//! 200 as above, or 404 if the provider never received it
//! ```
//!
//! Anything else (a timeout, a refused connection, a non-2xx status, a body
//! without `checkoutUrl` or `status`) is a [`ProviderError`].

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    Checkout, CheckoutRequest, PaymentProvider, ProviderError, TransferOutcome, TransferRequest,
};

/// Settings of the REST client.
#[derive(Clone, Debug)]
pub struct HttpProviderConfig {
    /// API base URL, e.g. `https://api.provider.example/v1`.
    pub base_url: String,
    /// API secret key, sent as a bearer token.
    pub secret: SecretString,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for a whole call.
    pub timeout: Duration,
}

/// The REST provider client.
#[derive(Clone, Debug)]
pub struct HttpProvider {
    client: reqwest::Client,
    base_url: String,
    secret: SecretString,
}

impl HttpProvider {
    /// A client with `config`'s timeouts.
    pub fn new(config: HttpProviderConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()?;
        Ok(Self {
            client,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            secret: config.secret,
        })
    }
}

#[derive(Serialize)]
struct CheckoutBody<'a> {
    reference: &'a str,
    amount: String,
    currency: &'a str,
    email: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutReply {
    checkout_url: String,
}

#[derive(Serialize)]
struct TransferBody<'a> {
    reference: &'a str,
    amount: String,
    currency: &'a str,
    destination: &'a str,
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum TransferReply {
    Accepted,
    Declined { reason: Option<String> },
}

impl TransferReply {
    fn outcome(self) -> TransferOutcome {
        match self {
            Self::Accepted => TransferOutcome::Accepted,
            Self::Declined { reason } => TransferOutcome::Declined(
                reason.unwrap_or_else(|| "declined by the provider".into()),
            ),
        }
    }
}

/// A 2xx JSON reply of `what`, or the provider error it amounts to.
async fn read<R: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<R, ProviderError> {
    let status = response.status();
    if status.is_server_error() {
        return Err(ProviderError::Unavailable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(ProviderError::Rejected(format!("HTTP {status}")));
    }
    response.json().await.map_err(|e| {
        if e.is_timeout() {
            ProviderError::Timeout
        } else {
            ProviderError::Rejected(format!("unreadable {what} reply: {e}"))
        }
    })
}

impl HttpProvider {
    /// POSTs `body` to `{base}/{path}` with the secret and `reference` as the
    /// idempotency key, and reads a 2xx JSON reply.
    async fn post<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        reference: &str,
        body: &B,
    ) -> Result<R, ProviderError> {
        let response = self
            .client
            .post(format!("{}/{path}", self.base_url))
            .bearer_auth(self.secret.expose_secret())
            .header("idempotency-key", reference)
            .json(body)
            .send()
            .await
            .map_err(|e| failure(&e))?;
        read(response, path).await
    }
}

fn failure(err: &reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unavailable(err.to_string())
    }
}

#[async_trait]
impl PaymentProvider for HttpProvider {
    async fn checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        let reply: CheckoutReply = self
            .post(
                "checkouts",
                request.reference,
                &CheckoutBody {
                    reference: request.reference,
                    amount: request.amount.to_string(),
                    currency: request.currency,
                    email: request.email,
                },
            )
            .await?;
        if reply.checkout_url.is_empty() {
            return Err(ProviderError::Rejected("empty checkoutUrl".into()));
        }
        Ok(Checkout {
            url: reply.checkout_url,
        })
    }

    async fn transfer(
        &self,
        request: &TransferRequest<'_>,
    ) -> Result<TransferOutcome, ProviderError> {
        let reply: TransferReply = self
            .post(
                "transfers",
                request.reference,
                &TransferBody {
                    reference: request.reference,
                    amount: request.amount.to_string(),
                    currency: request.currency,
                    destination: request.destination,
                },
            )
            .await?;
        Ok(reply.outcome())
    }

    async fn transfer_status(
        &self,
        reference: &str,
    ) -> Result<Option<TransferOutcome>, ProviderError> {
        let response = self
            .client
            .get(format!("{}/transfers/{reference}", self.base_url))
            .bearer_auth(self.secret.expose_secret())
            .send()
            .await
            .map_err(|e| failure(&e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let reply: TransferReply = read(response, "transfer status").await?;
        Ok(Some(reply.outcome()))
    }
}
