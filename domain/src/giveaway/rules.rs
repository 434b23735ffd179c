//! The rules of FLOWS.md §5 an event must pass to be stored, new or
//! changed, each refusal with the input path it concerns.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::events::WinnerSelection;
use crate::error::{DomainError, DomainResult};
use crate::giftcard::merchants::MerchantStatus;
use crate::giftcard::products;
use crate::money::Amount;
use crate::sql::{bug, text_input};

/// Most prizes an event may list.
pub const MAX_PRIZES: usize = 20;
/// Most units one prize may have (FLOWS.md §5).
pub const MAX_QUANTITY: i32 = 10_000;
/// Most prize units one event may have in all: each is an escrow reserved
/// in the publishing transaction.
pub const MAX_UNITS: i64 = 50_000;
/// Most slots of an INSTANT event (FLOWS.md §5).
pub const MAX_SLOTS: i32 = 1_440;
/// How far in the past `startsAt` may be when it is set (clock skew).
pub const START_GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// A prize as sent in `createEvent` / `updateEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrizeInput {
    /// The card product.
    pub card_product_id: Uuid,
    /// One of its denominations.
    pub face_value: Amount,
    /// 1-10000.
    pub quantity: i32,
}

/// An event's fields after validation, ready to store.
pub(super) struct Checked {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) social_post_url: Option<String>,
    pub(super) win_chance_percent: Option<i32>,
    pub(super) slot_count: i32,
    pub(super) starts_at: DateTime<Utc>,
    pub(super) ends_at: DateTime<Utc>,
    pub(super) prizes: Vec<PrizeInput>,
    pub(super) prize_count: i32,
    pub(super) total_cost: Amount,
}

/// The fields of an event, as they would be stored (new, or a draft with
/// its changes applied), before validation.
pub(super) struct Draft<'a> {
    pub(super) selection: WinnerSelection,
    pub(super) title: &'a str,
    pub(super) description: &'a str,
    pub(super) social_post_url: Option<&'a str>,
    pub(super) win_chance_percent: Option<i32>,
    pub(super) slot_count: Option<i32>,
    pub(super) starts_at: DateTime<Utc>,
    pub(super) ends_at: DateTime<Utc>,
    pub(super) prizes: &'a [PrizeInput],
    /// True for `startsAt` given in this request (checked against now).
    pub(super) start_changed: bool,
}

/// Every rule of FLOWS.md §5 with the input path of the first one broken.
pub(super) async fn check<C: ConnectionTrait>(conn: &C, draft: Draft<'_>) -> DomainResult<Checked> {
    let title = text_input(draft.title, "input.title", 1, 200)?;
    let description = text_input(draft.description, "input.description", 0, 5000)?;
    let social_post_url = draft
        .social_post_url
        .map(|url| {
            let url = text_input(url, "input.socialPostUrl", 1, 2000)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
                return Err(DomainError::bad_input(
                    "input.socialPostUrl",
                    "must be an http(s) URL",
                ));
            }
            Ok(url)
        })
        .transpose()?;
    match (draft.selection, draft.win_chance_percent) {
        (WinnerSelection::Instant, None) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "is required for INSTANT events",
            ));
        }
        (WinnerSelection::Instant, Some(p)) if !(1..=100).contains(&p) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "must be between 1 and 100",
            ));
        }
        (WinnerSelection::Draw, Some(_)) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "is only for INSTANT events",
            ));
        }
        _ => {}
    }
    let slot_count = draft.slot_count.unwrap_or(1);
    if !(1..=MAX_SLOTS).contains(&slot_count) {
        return Err(DomainError::bad_input(
            "input.slotCount",
            format!("must be between 1 and {MAX_SLOTS}"),
        ));
    }
    if draft.start_changed && draft.starts_at < Utc::now() - START_GRACE {
        return Err(DomainError::bad_input(
            "input.startsAt",
            "must not be in the past",
        ));
    }
    if draft.ends_at <= draft.starts_at {
        return Err(DomainError::bad_input(
            "input.endsAt",
            "must be after startsAt",
        ));
    }
    if draft.prizes.is_empty() || draft.prizes.len() > MAX_PRIZES {
        return Err(DomainError::bad_input(
            "input.prizes",
            format!("must list 1-{MAX_PRIZES} prizes"),
        ));
    }
    let ids: Vec<Uuid> = draft.prizes.iter().map(|p| p.card_product_id).collect();
    let found = products::find_many_with_merchants(conn, &ids).await?;
    let mut total = Amount::ZERO;
    let mut units: i64 = 0;
    for (i, prize) in draft.prizes.iter().enumerate() {
        let field = |name: &str| format!("input.prizes[{i}].{name}");
        let Some((product, merchant)) = found.iter().find(|(p, _)| p.id == prize.card_product_id)
        else {
            return Err(DomainError::bad_input(
                field("cardProductId"),
                "is not a card product",
            ));
        };
        if !product.active || merchant.status != MerchantStatus::Active {
            return Err(DomainError::bad_input(
                field("cardProductId"),
                "is not on sale by an active merchant",
            ));
        }
        if !product.denominations.contains(&prize.face_value) {
            return Err(DomainError::bad_input(
                field("faceValue"),
                "is not one of the product's denominations",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&prize.quantity) {
            return Err(DomainError::bad_input(
                field("quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        units += i64::from(prize.quantity);
        let cost = u32::try_from(prize.quantity)
            .ok()
            .and_then(|q| prize.face_value.checked_mul(q))
            .and_then(|c| total.checked_add(c));
        total = cost.ok_or_else(|| {
            DomainError::bad_input(field("quantity"), "makes the total cost too large")
        })?;
    }
    if units > MAX_UNITS {
        return Err(DomainError::bad_input(
            "input.prizes",
            format!("may hold at most {MAX_UNITS} units in all"),
        ));
    }
    Ok(Checked {
        title,
        description,
        social_post_url,
        win_chance_percent: draft.win_chance_percent,
        slot_count,
        starts_at: draft.starts_at,
        ends_at: draft.ends_at,
        prizes: draft.prizes.to_vec(),
        prize_count: i32::try_from(units).map_err(|_| bug("unit count out of range"))?,
        total_cost: total,
    })
}
