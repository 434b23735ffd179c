//! Gift cards: issuing (bought, or awarded as a prize) and reading
//! (FLOWS.md §4).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pin::{self, CardSecrets};
use super::products::ProductView;
use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::money::Amount;
use crate::sql::{Batch, amount, bug, enum_col, fetch_all, fetch_one};

/// `CardStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardStatus {
    /// Can be redeemed.
    Active,
    /// Redeemed at a branch (its escrow is SETTLED).
    Redeemed,
    /// Past its expiry (its escrow is RELEASED).
    Expired,
    /// Voided: its escrow was released, or the win disqualified.
    Void,
}

/// A card. The pin stays sealed until [`CardView::pin`] is asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardView {
    /// Card id.
    pub id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Its merchant.
    pub merchant_id: Uuid,
    /// Who holds it.
    pub owner_id: Uuid,
    /// The escrow that backs it.
    pub escrow_id: Uuid,
    /// What it is worth.
    pub face_value: Amount,
    /// Stored form of the code (no dashes).
    pub code: String,
    /// Where it stands.
    pub status: CardStatus,
    /// Locked after too many wrong pins, until then.
    pub locked_until: Option<DateTime<Utc>>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was redeemed.
    pub redeemed_at: Option<DateTime<Utc>>,
    pin_hash: Vec<u8>,
    pin_sealed: Vec<u8>,
}

impl CardView {
    /// True when `reach` may see the card: its owner, its merchant's staff,
    /// admins.
    pub fn visible_to(&self, reach: &Reach) -> bool {
        reach.is(self.owner_id) || reach.manages(self.merchant_id)
    }

    /// True when `reach` may see the code, pin and owner: the owner and
    /// admins only.
    pub fn secrets_visible_to(&self, reach: &Reach) -> bool {
        reach.is(self.owner_id) || reach.admin
    }

    /// The code as printed: `XXXX-XXXX-XXXX`.
    pub fn display_code(&self) -> String {
        pin::display_code(&self.code)
    }

    /// The pin in clear; `None` if it was sealed under another `CARD_SECRET`.
    pub fn pin(&self, secrets: &CardSecrets) -> Option<String> {
        let pin = secrets.unseal(self.id, &self.pin_sealed);
        if pin.is_none() {
            tracing::error!(card = %self.id, "a card pin cannot be unsealed: was CARD_SECRET changed?");
        }
        pin
    }

    /// True when `pin` is this card's pin.
    pub fn pin_matches(&self, secrets: &CardSecrets, pin: &str) -> bool {
        secrets.verify(self.id, pin, &self.pin_hash)
    }
}

const COLUMNS: &str = "id, product_id, merchant_id, owner_id, escrow_id, face_value, code, status, \
     locked_until, issued_at, expires_at, redeemed_at, pin_hash, pin_sealed";

fn view(row: &QueryResult) -> DomainResult<CardView> {
    Ok(CardView {
        id: row.try_get("", "id")?,
        product_id: row.try_get("", "product_id")?,
        merchant_id: row.try_get("", "merchant_id")?,
        owner_id: row.try_get("", "owner_id")?,
        escrow_id: row.try_get("", "escrow_id")?,
        face_value: amount(row, "face_value")?,
        code: row.try_get("", "code")?,
        status: enum_col(row, "status")?,
        locked_until: row.try_get("", "locked_until")?,
        issued_at: row.try_get("", "issued_at")?,
        expires_at: row.try_get("", "expires_at")?,
        redeemed_at: row.try_get("", "redeemed_at")?,
        pin_hash: row.try_get("", "pin_hash")?,
        pin_sealed: row.try_get("", "pin_sealed")?,
    })
}

/// The one card matching `condition` (on `$1`).
pub(super) async fn one<C: ConnectionTrait>(
    conn: &C,
    condition: &str,
    value: sea_orm::Value,
) -> DomainResult<Option<CardView>> {
    fetch_one(
        conn,
        &format!("SELECT {COLUMNS} FROM giftcard.cards WHERE {condition}"),
        vec![value],
        view,
    )
    .await
}

/// The card `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<CardView>> {
    one(conn, "id = $1", id.into()).await
}

/// The cards backed by these escrows (escrows without a card are skipped),
/// in one query.
pub async fn find_by_escrows<C: ConnectionTrait>(
    conn: &C,
    escrow_ids: &[Uuid],
) -> DomainResult<Vec<CardView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giftcard.cards WHERE escrow_id = ANY($1) ORDER BY issued_at, id"
        ),
        vec![escrow_ids.to_vec().into()],
        view,
    )
    .await
}

/// The cards `owner_id` holds, newest first.
pub async fn owned_by<C: ConnectionTrait>(conn: &C, owner_id: Uuid) -> DomainResult<Vec<CardView>> {
    fetch_all(
        conn,
            &format!(
                "SELECT {COLUMNS} FROM giftcard.cards WHERE owner_id = $1 ORDER BY issued_at DESC, id DESC"
            ),
            vec![owner_id.into()],
        view,
    )
    .await
}

/// A card to issue.
#[derive(Clone, Copy, Debug)]
pub struct IssueCard<'a> {
    /// Its product.
    pub product: &'a ProductView,
    /// Who gets it.
    pub owner_id: Uuid,
    /// The RESERVED escrow backing it.
    pub escrow_id: Uuid,
    /// Its face value (one of the product's denominations).
    pub face_value: Amount,
}

/// An ACTIVE card with a fresh code and pin, expiring `validityDays` from
/// now, its insert added to `batch` with `on_conflict` after its values
/// (empty, or an `ON CONFLICT` clause). The code is unique by chance (60
/// random bits): without an `ON CONFLICT (code)` clause the statement fails
/// on `cards_code_key` in the unlikely event of a collision.
pub fn new_card(
    batch: &mut Batch,
    secrets: &CardSecrets,
    card: IssueCard<'_>,
    on_conflict: &str,
) -> CardView {
    let id = Uuid::now_v7();
    let pin = pin::new_pin();
    let issued_at = Utc::now();
    let view = CardView {
        id,
        product_id: card.product.id,
        merchant_id: card.product.merchant_id,
        owner_id: card.owner_id,
        escrow_id: card.escrow_id,
        face_value: card.face_value,
        code: pin::new_code(),
        status: CardStatus::Active,
        locked_until: None,
        issued_at,
        expires_at: issued_at + chrono::Duration::days(i64::from(card.product.validity_days)),
        redeemed_at: None,
        pin_hash: secrets.hash(id, &pin),
        pin_sealed: secrets.seal(id, &pin),
    };
    let row = batch.bind_list([
        view.id.into(),
        view.product_id.into(),
        view.merchant_id.into(),
        view.owner_id.into(),
        view.escrow_id.into(),
        view.face_value.minor().into(),
        view.code.as_str().into(),
        view.pin_hash.clone().into(),
        view.pin_sealed.clone().into(),
        view.issued_at.into(),
        view.expires_at.into(),
    ]);
    batch.sql(format!(
        "INSERT INTO giftcard.cards (id, product_id, merchant_id, owner_id, escrow_id, face_value, code, \
         pin_hash, pin_sealed, issued_at, expires_at) VALUES ({row}){on_conflict}"
    ));
    view
}

/// True when `err` is the collision of a new card's code with another's:
/// the work that issued it can simply be run again (with a new code).
pub fn is_code_collision(err: &DomainError) -> bool {
    err.is_unique_violation("cards_code_key")
}

/// Issues an ACTIVE card ([`new_card`]) inside the caller's transaction.
/// A code collision inserts nothing and is retried with a new code; the
/// transaction stays usable.
pub async fn issue(
    txn: &DatabaseTransaction,
    secrets: &CardSecrets,
    card: IssueCard<'_>,
) -> DomainResult<CardView> {
    for _ in 0..3 {
        let mut insert = Batch::new();
        let view = new_card(
            &mut insert,
            secrets,
            card,
            " ON CONFLICT (code) DO NOTHING RETURNING id",
        );
        if insert.fetch_one(txn).await?.is_some() {
            return Ok(view);
        }
    }
    Err(bug("three card code collisions in a row"))
}
