//! Card products: what a merchant sells, at which face values, valid for
//! how long. Only staff of an ACTIVE merchant create or re-activate them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::merchants::{self, MerchantView};
use crate::error::DomainResult;
use crate::identity::staff::Reach;
use crate::memo::Remembered;
use crate::money::Amount;
use crate::sql::{Batch, bug, by_ids, db_name, fetch_all, statement};

mod manage;

pub use manage::{MAX_DENOMINATIONS, MAX_VALIDITY_DAYS, NewProduct, create, set_active};
/// A card product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// Product id.
    pub id: Uuid,
    /// Who sells it.
    pub merchant_id: Uuid,
    /// Product name.
    pub name: String,
    /// What the card buys.
    pub description: String,
    /// The face values a card can have, ascending.
    pub denominations: Vec<Amount>,
    /// A card expires this many days after it is issued.
    pub validity_days: i32,
    /// On sale.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, merchant_id, name, description, denominations, validity_days, active, created_at";
/// [`COLUMNS`] of the products table aliased `p`, for joins.
pub(crate) const P_COLUMNS: &str = "p.id, p.merchant_id, p.name, p.description, p.denominations, \
     p.validity_days, p.active, p.created_at";

/// A product from a row of [`COLUMNS`] (or [`P_COLUMNS`]).
pub(crate) fn view(row: &QueryResult) -> DomainResult<ProductView> {
    let denominations: Vec<i64> = row.try_get("", "denominations")?;
    Ok(ProductView {
        id: row.try_get("", "id")?,
        merchant_id: row.try_get("", "merchant_id")?,
        name: row.try_get("", "name")?,
        description: row.try_get("", "description")?,
        denominations: denominations
            .into_iter()
            .map(|d| Amount::new(d).map_err(|_| bug("a negative denomination")))
            .collect::<DomainResult<_>>()?,
        validity_days: row.try_get("", "validity_days")?,
        active: row.try_get("", "active")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// The products with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<ProductView>> {
    by_ids(conn, "giftcard.card_products", COLUMNS, ids, view).await
}

/// The product `id` with its merchant, in one query.
pub async fn find_with_merchant<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<(ProductView, MerchantView)>> {
    Ok(with_merchants(conn, "p.id = $1", id.into()).await?.pop())
}

/// The products with these ids, each with its merchant, in one query
/// (unknown ids are skipped).
pub async fn find_many_with_merchants<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<(ProductView, MerchantView)>> {
    with_merchants(conn, "p.id = ANY($1)", ids.to_vec().into()).await
}

async fn with_merchants<C: ConnectionTrait>(
    conn: &C,
    condition: &str,
    value: sea_orm::Value,
) -> DomainResult<Vec<(ProductView, MerchantView)>> {
    let rows = conn
        .query_all_raw(statement(
            &format!(
                "SELECT {P_COLUMNS}, m.id AS m_id, m.name AS m_name, m.status AS m_status, \
                   m.service_rate_bps AS m_service_rate_bps, m.payout_account AS m_payout_account, \
                   m.created_at AS m_created_at \
                 FROM giftcard.card_products p JOIN giftcard.merchants m ON m.id = p.merchant_id WHERE {condition}"
            ),
            vec![value],
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((view(row)?, merchants::view_prefixed(row, "m_")?)))
        .collect()
}

/// Products with their merchants as this process last read them, for the
/// purchases that will succeed (`purchase::purchase_at_once`): a copy is used
/// for at most [`OnSale::FRESH`], and the statement that sells re-checks it
/// against the rows ([`OnSale::still`]), so a stale copy costs a
/// request the general path, never a sale the rows would refuse.
#[derive(Clone, Debug)]
pub struct OnSale(Remembered<Uuid, (Instant, ProductView, MerchantView)>);

impl Default for OnSale {
    fn default() -> Self {
        Self(Remembered::new(10_000))
    }
}

impl OnSale {
    /// How long a copy is used.
    pub const FRESH: Duration = Duration::from_secs(5);

    /// Product `id` with its merchant: the fresh copy, or as read now.
    pub async fn get<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: Uuid,
    ) -> DomainResult<Option<(ProductView, MerchantView)>> {
        if let Some((read, product, merchant)) = self.0.get(&id)
            && read.elapsed() < Self::FRESH
        {
            return Ok(Some((product, merchant)));
        }
        let found = find_with_merchant(conn, id).await?;
        if let Some((product, merchant)) = &found {
            self.0
                .insert(id, (Instant::now(), product.clone(), merchant.clone()));
        }
        Ok(found)
    }

    /// Drops the copy of `id` (a sale from it failed).
    pub fn forget(&self, id: Uuid) {
        self.0.remove(&id);
    }

    /// Adds part `name` to `batch`: a row while the rows of `product` and
    /// its `merchant` are still as the copy has them (every field a sale
    /// depends on), none once they changed. It states no rule of its own:
    /// the rules were applied to the copy, and hold of the rows while the
    /// rows are the copy.
    pub fn still(batch: &mut Batch, name: &str, product: &ProductView, merchant: &MerchantView) {
        let denominations: Vec<i64> = product.denominations.iter().map(|d| d.minor()).collect();
        let [
            id,
            merchant_id,
            active,
            validity,
            denominations,
            status,
            rate,
        ] = batch.binds([
            product.id.into(),
            merchant.id.into(),
            product.active.into(),
            product.validity_days.into(),
            denominations.into(),
            db_name(&merchant.status).into(),
            i32::try_from(merchant.service_rate_bps)
                .unwrap_or(i32::MAX)
                .into(),
        ]);
        batch.named(
            name,
            format!(
                "SELECT 1 FROM giftcard.card_products p JOIN giftcard.merchants m ON m.id = p.merchant_id \
                 WHERE p.id = {id} AND p.merchant_id = {merchant_id} AND p.active = {active} \
                   AND p.validity_days = {validity} AND p.denominations = {denominations}::bigint[] \
                   AND m.status = {status} AND m.service_rate_bps = {rate}"
            ),
        );
    }
}

/// True when `reach` may see `product` of `merchant`: on sale by a visible
/// merchant, or the viewer manages the merchant. A SUSPENDED merchant's
/// products stay visible (buying them is `Forbidden`); a PENDING
/// merchant's are not.
pub fn visible(product: &ProductView, merchant: &MerchantView, reach: &Reach) -> bool {
    reach.manages(product.merchant_id) || (product.active && merchant.visible_to(reach))
}

/// The product `id` if `reach` may see it: on sale by a visible merchant,
/// or the viewer manages the merchant.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    id: Uuid,
) -> DomainResult<Option<ProductView>> {
    Ok(find_with_merchant(conn, id)
        .await?
        .filter(|(product, merchant)| visible(product, merchant, reach))
        .map(|(product, _)| product))
}

/// A page of `merchant_id`'s products, oldest first, after `after`;
/// inactive ones only when `include_inactive`.
pub async fn of_merchant<C: ConnectionTrait>(
    conn: &C,
    merchant_id: Uuid,
    include_inactive: bool,
    after: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<ProductView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giftcard.card_products \
                 WHERE merchant_id = $1 AND ($2 OR active) AND ($3::uuid IS NULL OR id > $3) \
                 ORDER BY id LIMIT $4"
        ),
        vec![
            merchant_id.into(),
            include_inactive.into(),
            after.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
        view,
    )
    .await
}
