//! `purchaseCard` (FLOWS.md §4): the buyer's wallet into escrow, the
//! escrow reserved at the merchant's rate, an ACTIVE card, all or nothing,
//! once per key.

use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::cards::{self, CardView, IssueCard, is_code_collision, new_card};
use super::escrow::{self, EscrowSource, Funding, NewEscrow};
use super::merchants::{MerchantStatus, MerchantView};
use super::products::{self, OnSale, ProductView};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::idempotency::{self, Scope, Work};
use crate::identity::staff::Reach;
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner};
use crate::money::Amount;
use crate::sql::{Batch, bug};

/// The rate limit (`RATE_LIMITS`) `purchaseCard` counts against.
pub const RATE_LIMIT: &str = "purchase";
const OPERATION: &str = "purchaseCard";

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
    ) -> DomainResult<CardView> {
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
        )?;
        let card = new_card(
            batch,
            &s.card_secrets,
            IssueCard {
                product,
                owner_id: self.buyer,
                escrow_id,
                face_value: self.face_value,
            },
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
        Ok(card)
    }
}

/// The purchase as ONE statement outside any transaction, when the
/// process's copy of the product ([`OnSale`]) admits the order for anyone.
/// The statement holds the copy against the rows (`g`), fails if the
/// wallet is short ([`ledger::post_in_batch`]) or the key was used before
/// ([`idempotency::first_use`]). The card, or `None` if the statement
/// failed on a constraint (and so wrote nothing) or the copy does not
/// admit the order (the general path then answers why).
///
/// Hand-written on purpose, as the ledger posting it includes: with
/// pgbench replaying a purchase's rows, Postgres alone ran 0.44-0.48 of
/// tpcb-like as separate statements and 0.58-0.63 as this one statement,
/// and a purchase went from 6 round trips to 2, taking purchases from
/// 0.29-0.35 to 0.43-0.45 of pgbench (docs/benchmarks-history.md, "Reads
/// and writes"; today's figure in BENCHMARKS.md, "Purchase and
/// redemption").
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
    )?;
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
            let txn = s.db.begin().await?;
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
            )?;
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
        None => cards::find(&s.db, card_id)
            .await?
            .ok_or_else(|| bug("a purchased card vanished")),
    }
}
