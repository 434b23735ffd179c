//! Gift cards: issuing (bought, or awarded as a prize) and reading
//! (FLOWS.md §4).

use chrono::{DateTime, Utc};
use giftdrop_entities::giftcard::cards;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DerivePartialModel,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pin::{self, CardSecrets};
use super::products::ProductView;
use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::money::Amount;
use crate::sql::{self, Batch, bug};

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

impl From<cards::Status> for CardStatus {
    fn from(status: cards::Status) -> Self {
        match status {
            cards::Status::Active => Self::Active,
            cards::Status::Redeemed => Self::Redeemed,
            cards::Status::Expired => Self::Expired,
            cards::Status::Void => Self::Void,
        }
    }
}

impl From<CardStatus> for cards::Status {
    fn from(status: CardStatus) -> Self {
        match status {
            CardStatus::Active => Self::Active,
            CardStatus::Redeemed => Self::Redeemed,
            CardStatus::Expired => Self::Expired,
            CardStatus::Void => Self::Void,
        }
    }
}

/// The columns of `giftcard.cards` a [`CardView`] holds.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "cards::Entity")]
struct CardRow {
    id: Uuid,
    product_id: Uuid,
    merchant_id: Uuid,
    owner_id: Uuid,
    escrow_id: Uuid,
    face_value: i64,
    code: String,
    status: cards::Status,
    locked_until: Option<DateTime<Utc>>,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    redeemed_at: Option<DateTime<Utc>>,
    pin_hash: Vec<u8>,
    pin_sealed: Vec<u8>,
}

impl TryFrom<CardRow> for CardView {
    type Error = DomainError;

    fn try_from(row: CardRow) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            product_id: row.product_id,
            merchant_id: row.merchant_id,
            owner_id: row.owner_id,
            escrow_id: row.escrow_id,
            face_value: Amount::new(row.face_value).map_err(|_| bug("a negative face_value"))?,
            code: row.code,
            status: row.status.into(),
            locked_until: row.locked_until,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            redeemed_at: row.redeemed_at,
            pin_hash: row.pin_hash,
            pin_sealed: row.pin_sealed,
        })
    }
}

/// The one card `query` selects, if any.
async fn one<C: ConnectionTrait>(
    conn: &C,
    query: Select<cards::Entity>,
) -> DomainResult<Option<CardView>> {
    sql::one_as(conn, query.into_partial_model::<CardRow>()).await
}

/// Every card `query` selects.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<cards::Entity>,
) -> DomainResult<Vec<CardView>> {
    sql::all_as(conn, query.into_partial_model::<CardRow>()).await
}

/// The card `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<CardView>> {
    one(conn, cards::Entity::find_by_id(id)).await
}

/// The card with the stored form of `code`, locked until `txn` ends.
pub(super) async fn lock_by_code(
    txn: &DatabaseTransaction,
    code: &str,
) -> DomainResult<Option<CardView>> {
    let query = cards::Entity::find().filter(cards::Column::Code.eq(code));
    one(txn, query.lock_exclusive()).await
}

/// The cards backed by these escrows (escrows without a card are skipped),
/// in one query.
pub async fn find_by_escrows<C: ConnectionTrait>(
    conn: &C,
    escrow_ids: &[Uuid],
) -> DomainResult<Vec<CardView>> {
    let query = cards::Entity::find()
        .filter(cards::Column::EscrowId.eq_any(escrow_ids.iter().copied()))
        .order_by_asc(cards::Column::IssuedAt)
        .order_by_asc(cards::Column::Id);
    all(conn, query).await
}

/// The cards `owner_id` holds, newest first.
pub async fn owned_by<C: ConnectionTrait>(conn: &C, owner_id: Uuid) -> DomainResult<Vec<CardView>> {
    let query = cards::Entity::find()
        .filter(cards::Column::OwnerId.eq(owner_id))
        .order_by_desc(cards::Column::IssuedAt)
        .order_by_desc(cards::Column::Id);
    all(conn, query).await
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
/// now, and the row to insert for it.
fn new_row(secrets: &CardSecrets, card: IssueCard<'_>) -> (CardView, cards::ActiveModel) {
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
    let row = cards::ActiveModel {
        id: Set(view.id),
        product_id: Set(view.product_id),
        merchant_id: Set(view.merchant_id),
        owner_id: Set(view.owner_id),
        escrow_id: Set(view.escrow_id),
        face_value: Set(view.face_value.minor()),
        code: Set(view.code.clone()),
        pin_hash: Set(view.pin_hash.clone()),
        pin_sealed: Set(view.pin_sealed.clone()),
        issued_at: Set(view.issued_at),
        expires_at: Set(view.expires_at),
        ..Default::default()
    };
    (view, row)
}

/// An ACTIVE card with a fresh code and pin ([`new_row`]), its insert added
/// to `batch`. The code is unique by chance (60 random bits): the statement
/// fails on `cards_code_key` in the unlikely event of a collision.
pub fn new_card(batch: &mut Batch, secrets: &CardSecrets, card: IssueCard<'_>) -> CardView {
    let (view, row) = new_row(secrets, card);
    batch.push(cards::Entity::insert(row).into_query());
    view
}

/// True when `err` is the collision of a new card's code with another's:
/// the work that issued it can simply be run again (with a new code).
pub fn is_code_collision(err: &DomainError) -> bool {
    err.is_unique_violation("cards_code_key")
}

/// Issues an ACTIVE card ([`new_row`]) inside the caller's transaction.
/// A code collision inserts nothing and is retried with a new code; the
/// transaction stays usable.
pub async fn issue(
    txn: &DatabaseTransaction,
    secrets: &CardSecrets,
    card: IssueCard<'_>,
) -> DomainResult<CardView> {
    for _ in 0..3 {
        let (view, row) = new_row(secrets, card);
        let inserted = cards::Entity::insert(row)
            .on_conflict(
                OnConflict::column(cards::Column::Code)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        if inserted == 1 {
            return Ok(view);
        }
    }
    Err(bug("three card code collisions in a row"))
}
