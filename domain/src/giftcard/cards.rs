//! Gift cards: issuing (bought, or awarded as a prize), reading, and
//! `purchaseCard` (FLOWS.md §4).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::escrow::{self, EscrowSource, Funding, NewEscrow};
use super::merchants::{MerchantStatus, MerchantView};
use super::pin::{self, CardSecrets};
use super::products::{self, OnSale, ProductView};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::idempotency::{self, Scope, Work};
use crate::identity::staff::Reach;
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner};
use crate::money::Amount;
use crate::sql::{Batch, amount, bug, enum_col, fetch_all, fetch_one};

/// The rate limit (`RATE_LIMITS`) `purchaseCard` counts against.
pub const RATE_LIMIT: &str = "purchase";
const OPERATION: &str = "purchaseCard";

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

/// How often a purchase is run again after its new card's code collided.
const COLLISION_RETRIES: usize = 3;

/// `purchaseCard`: debits `face_value` from the buyer's wallet into escrow
/// (CARD_PURCHASE), reserves the escrow at the merchant's current service
/// rate and issues an ACTIVE card, all or nothing, once per key.
///
/// A first request that will succeed costs ONE round trip: a single
/// autocommitted statement with the posting, the escrow, the card, the
/// audit entry and the key, checking the process's copy of the product
/// ([`purchase_at_once`]). Everything else (a refusal, a repeat, a
/// concurrent duplicate, a wallet short of funds, a code collision) makes
/// that statement fail whole, and the request then takes the general path
/// ([`purchase_in_transaction`]), which finds out what and answers as the
/// contract says.
pub async fn purchase(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    product_id: Uuid,
    face_value: Amount,
    key: &str,
) -> DomainResult<CardView> {
    s.limiter
        .check(RATE_LIMIT, &viewer.user_id.to_string())
        .await?;
    let order = Order {
        buyer: viewer.user_id,
        product_id,
        face_value,
        deposit_fee_bps: s.settings.deposit_fee_bps,
    };
    let scope = Scope {
        caller: viewer.user_id,
        operation: OPERATION,
        key,
    };
    if let Some(card) = purchase_at_once(s, meta, &order, &scope).await? {
        return Ok(card);
    }
    metrics::counter!("giftdrop_purchase_general_path_total").increment(1);
    let mut attempt = 0;
    loop {
        match purchase_in_transaction(s, meta, viewer, &order, &scope).await {
            Err(err) if is_code_collision(&err) && attempt < COLLISION_RETRIES => attempt += 1,
            result => return result,
        }
    }
}

/// What a buyer asked for.
#[derive(Clone, Copy, Debug)]
struct Order {
    buyer: Uuid,
    product_id: Uuid,
    face_value: Amount,
    /// `DEPOSIT_FEE_BPS` when the order came in, kept on its escrow.
    deposit_fee_bps: u32,
}

impl Order {
    /// The idempotency key's input.
    fn input(&self) -> (Uuid, Amount) {
        (self.product_id, self.face_value)
    }

    /// The contract's rules of a sale, in order, for a buyer of `reach`:
    /// the product is visible to them (else `NotFound`), the face value
    /// one of its denominations, the merchant ACTIVE, the product on sale.
    /// Both paths of a purchase apply these and only these: the one
    /// statement to the process's copy of the product (which it then holds
    /// against the rows), the general path to the rows it reads.
    fn admit(
        &self,
        product: &ProductView,
        merchant: &MerchantView,
        reach: &Reach,
    ) -> DomainResult<()> {
        if !products::visible(product, merchant, reach) {
            return Err(DomainError::NotFound);
        }
        if !product.denominations.contains(&self.face_value) {
            return Err(DomainError::bad_input(
                "input.faceValue",
                "is not one of the product's denominations",
            ));
        }
        if merchant.status != MerchantStatus::Active {
            return Err(DomainError::Forbidden);
        }
        if !product.active {
            return Err(DomainError::Conflict("this product is not on sale".into()));
        }
        Ok(())
    }

    /// The posting of the sale from the buyer's `wallet` into escrow,
    /// referenced by the escrow's id.
    fn transfer<'a>(&self, wallet: Uuid, escrow_ref: &'a str) -> Transfer<'a> {
        Transfer {
            kind: EntryKind::CardPurchase,
            reference: escrow_ref,
            legs: vec![
                Leg::debit(Account::Wallet(wallet), self.face_value),
                Leg::credit(
                    Account::Platform(PlatformAccount::EscrowHolding),
                    self.face_value,
                ),
            ],
        }
    }

    /// Adds the escrow funded by the buyer's `wallet` through transfer
    /// `transfer_id`, the card and the audit entry to `batch`; the card as
    /// it will be.
    fn push_issue(
        &self,
        s: &Services,
        meta: &RequestMeta,
        batch: &mut Batch,
        (product, merchant): (&ProductView, &MerchantView),
        (wallet, transfer_id): (Uuid, Uuid),
        escrow_id: Uuid,
    ) -> CardView {
        escrow::reserve_in(
            batch,
            Funding {
                funder_id: self.buyer,
                funder_account_id: wallet,
                transfer_id,
                event_id: None,
                deposit_fee_bps: self.deposit_fee_bps,
            },
            &[NewEscrow {
                id: escrow_id,
                source: EscrowSource::CardPurchase,
                amount: self.face_value,
                merchant_id: merchant.id,
                service_rate_bps: merchant.service_rate_bps,
            }],
        );
        let card = new_card(
            batch,
            &s.card_secrets,
            IssueCard {
                product,
                owner_id: self.buyer,
                escrow_id,
                face_value: self.face_value,
            },
            "",
        );
        batch.push(audit::statement(
            meta,
            AuditRecord {
                actor: Some(self.buyer),
                action: "card.purchase",
                subject: format!("card:{}", card.id),
                detail: Some(format!("{} into escrow {escrow_id}", self.face_value)),
            },
        ));
        card
    }
}

/// The purchase as ONE statement outside any transaction, when the
/// process's copy of the product ([`OnSale`]) admits the order for anyone.
/// The statement holds the copy against the rows (`g`), fails if the
/// wallet is short ([`ledger::post_in_batch`]) or the key was used before
/// ([`idempotency::first_use`]). The card, or `None` if the statement
/// failed on a constraint (and so wrote nothing) or the copy does not
/// admit the order (the general path then answers why).
async fn purchase_at_once(
    s: &Services,
    meta: &RequestMeta,
    order: &Order,
    scope: &Scope<'_>,
) -> DomainResult<Option<CardView>> {
    let Some((product, merchant)) = s.on_sale.get(&s.db, order.product_id).await? else {
        return Ok(None);
    };
    if order.admit(&product, &merchant, &Reach::default()).is_err() {
        return Ok(None);
    }
    let wallet = s
        .wallet_ids
        .of(&s.db, WalletOwner::User(order.buyer))
        .await?;
    let escrow_id = Uuid::now_v7();
    let reference = escrow_id.to_string();
    let mut batch = Batch::new();
    // The copy of the product must still be true of its rows: without `g`,
    // no posting, and the escrow (which references the posting's
    // transfer) fails the statement.
    OnSale::still(&mut batch, "g", &product, &merchant);
    let posting = ledger::post_in_batch(
        &mut batch,
        meta,
        &order.transfer(wallet, &reference),
        Some("g"),
    )?;
    let card = order.push_issue(
        s,
        meta,
        &mut batch,
        (&product, &merchant),
        (wallet, posting.transfer_id()),
        escrow_id,
    );
    idempotency::first_use(&mut batch, scope, &order.input(), &card.id)?;
    posting.select_wallets(&mut batch);
    match batch.fetch_one(&s.db).await {
        Ok(Some(row)) => {
            posting.posted(std::slice::from_ref(&row))?.committed(s);
            count_purchase();
            Ok(Some(card))
        }
        // The wallet row is always updated, or the statement failed.
        Ok(None) => Err(bug("a purchase posted to no wallet")),
        Err(err) if err.is_constraint_violation() => {
            s.on_sale.forget(order.product_id);
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn count_purchase() {
    escrow::count_reserved(1);
    metrics::counter!("giftdrop_cards_issued_total", "source" => "purchase").increment(1);
}

/// The purchase in one transaction under the key ([`idempotency::Hold::Optimistic`]):
/// the path of every request that [`purchase_at_once`] did not commit.
async fn purchase_in_transaction(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    order: &Order,
    scope: &Scope<'_>,
) -> DomainResult<CardView> {
    let mut issued: Option<CardView> = None;
    let issued_slot = &mut issued;
    let card_id = idempotency::run_posting(
        s,
        idempotency::Hold::Optimistic,
        scope.clone(),
        &order.input(),
        || async move {
            let txn = sea_orm::TransactionTrait::begin(&s.db).await?;
            let (product, merchant) = products::find_with_merchant(&txn, order.product_id)
                .await?
                .ok_or(DomainError::NotFound)?;
            // Only a product the simple rule hides needs the viewer's staff
            // memberships (staff see their own products off sale).
            let reach = if products::visible(&product, &merchant, &Reach::default()) {
                Reach::default()
            } else {
                Reach::of(&txn, Some(viewer)).await?
            };
            order.admit(&product, &merchant, &reach)?;
            let wallet = s
                .wallet_ids
                .of(&txn, WalletOwner::User(order.buyer))
                .await?;
            let escrow_id = Uuid::now_v7();
            let reference = escrow_id.to_string();
            let funded = ledger::post(&txn, meta, order.transfer(wallet, &reference)).await?;
            let mut closing = Batch::new();
            let card = order.push_issue(
                s,
                meta,
                &mut closing,
                (&product, &merchant),
                (wallet, funded.transfer_id),
                escrow_id,
            );
            let id = card.id;
            *issued_slot = Some(card);
            Ok(Work {
                txn,
                value: id,
                posted: Some(funded),
                closing,
            })
        },
    )
    .await?;
    match issued.filter(|card| card.id == card_id) {
        Some(card) => {
            count_purchase();
            Ok(card)
        }
        // A replay, or a duplicate's card: as it is now.
        None => find(&s.db, card_id)
            .await?
            .ok_or_else(|| bug("a purchased card vanished")),
    }
}
