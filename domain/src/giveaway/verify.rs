//! Checking a participant's social handle (FLOWS.md §5): a job asks the
//! [`SocialVerifier`] whether the handle engaged with the event's post, and
//! the participant becomes VERIFIED or REJECTED.
//!
//! Two verifiers: [`SocialVerifier::Http`], a client for a verification
//! service (`SOCIAL_VERIFIER_URL`), and [`SocialVerifier::Instant`] for
//! development, which verifies everyone at once.

use std::time::Duration;

use giftdrop_entities::giveaway::participants;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::participants::{ParticipantStatus, find_many};
use crate::Services;
use crate::error::{DomainError, DomainResult};
use crate::jobs::JobPayload;

/// Job: verify participant `participant_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyParticipant {
    /// The participant.
    pub participant_id: Uuid,
}

impl JobPayload for VerifyParticipant {
    const KIND: &'static str = "verify_participant";
}

/// What the verifier says of a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The handle engaged with the post.
    Verified,
    /// It did not, or does not exist.
    Rejected,
}

/// Who checks social handles.
#[derive(Clone, Debug)]
pub enum SocialVerifier {
    /// Everyone is verified at once (development, tests).
    Instant,
    /// `POST {url}` with `{"handle", "postUrl"}`; the service answers
    /// `{"verified": bool}`. Anything else is an error, retried by the job.
    Http {
        /// The service's endpoint.
        url: String,
        /// Client with a timeout.
        client: reqwest::Client,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ask<'a> {
    handle: &'a str,
    post_url: Option<&'a str>,
}

#[derive(Deserialize)]
struct Answer {
    verified: bool,
}

impl SocialVerifier {
    /// A client of the service at `url`, giving up on an answer after
    /// `timeout`.
    pub fn http(url: String, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the social verifier client: {e}"))?;
        Ok(Self::Http { url, client })
    }

    /// The verdict on `handle` for the post at `post_url`.
    pub async fn check(&self, handle: &str, post_url: Option<&str>) -> DomainResult<Verdict> {
        match self {
            Self::Instant => Ok(Verdict::Verified),
            Self::Http { url, client } => {
                let failed = |what: String| {
                    DomainError::Internal(anyhow::anyhow!("social verifier at {url}: {what}"))
                };
                let response = client
                    .post(url)
                    .json(&Ask { handle, post_url })
                    .send()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(failed(format!("answered {}", response.status())));
                }
                let answer: Answer = response
                    .json()
                    .await
                    .map_err(|e| failed(format!("unreadable answer: {e}")))?;
                Ok(if answer.verified {
                    Verdict::Verified
                } else {
                    Verdict::Rejected
                })
            }
        }
    }
}

/// Runs the check for `participant_id` if it is still pending, and records
/// the verdict; the participant's status afterwards (`None`: no such
/// participant). Repeating it changes nothing: only a pending participant
/// is updated.
pub async fn verify_participant(
    s: &Services,
    participant_id: Uuid,
) -> DomainResult<Option<ParticipantStatus>> {
    let Some(participant) = find_many(&s.db, &[participant_id]).await?.pop() else {
        return Ok(None);
    };
    if participant.status != ParticipantStatus::PendingVerification {
        return Ok(Some(participant.status));
    }
    let event = super::events::find(&s.db, participant.event_id).await?;
    let post_url = event.as_ref().and_then(|e| e.social_post_url.as_deref());
    let verdict = s
        .verifier
        .check(&participant.social_handle, post_url)
        .await?;
    let status = match verdict {
        Verdict::Verified => ParticipantStatus::Verified,
        Verdict::Rejected => ParticipantStatus::Rejected,
    };
    participants::Entity::update_many()
        .col_expr(
            participants::Column::Status,
            participants::Status::from(status).into(),
        )
        .col_expr(participants::Column::VerifiedAt, Expr::current_timestamp())
        .filter(participants::Column::Id.eq(participant_id))
        .filter(participants::Column::Status.eq(participants::Status::PendingVerification))
        .exec(&s.db)
        .await?;
    Ok(Some(status))
}
