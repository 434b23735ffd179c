//! Card products: what a merchant sells, at which face values, valid for
//! how long. Only staff of an ACTIVE merchant create or re-activate them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use giftdrop_entities::giftcard::{card_products, merchants};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityName, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::merchants::MerchantView;
use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::memo::Remembered;
use crate::money::Amount;
use crate::sql::{self, Batch, bug, db_name};

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

impl TryFrom<card_products::Model> for ProductView {
    type Error = DomainError;

    fn try_from(row: card_products::Model) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            merchant_id: row.merchant_id,
            name: row.name,
            description: row.description,
            denominations: row
                .denominations
                .into_iter()
                .map(|d| Amount::new(d).map_err(|_| bug("a negative denomination")))
                .collect::<DomainResult<_>>()?,
            validity_days: row.validity_days,
            active: row.active,
            created_at: row.created_at,
        })
    }
}

/// Every product `query` selects.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<card_products::Entity>,
) -> DomainResult<Vec<ProductView>> {
    sql::all_as(conn, query.into_model::<card_products::Model>()).await
}

/// The products with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<ProductView>> {
    let query =
        card_products::Entity::find().filter(card_products::Column::Id.eq_any(ids.iter().copied()));
    all(conn, query).await
}

/// The product `id` with its merchant, in one query.
pub async fn find_with_merchant<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<(ProductView, MerchantView)>> {
    Ok(with_merchants(conn, card_products::Column::Id.eq(id))
        .await?
        .pop())
}

/// The products with these ids, each with its merchant, in one query
/// (unknown ids are skipped).
pub async fn find_many_with_merchants<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<(ProductView, MerchantView)>> {
    with_merchants(conn, card_products::Column::Id.eq_any(ids.iter().copied())).await
}

async fn with_merchants<C: ConnectionTrait>(
    conn: &C,
    condition: Expr,
) -> DomainResult<Vec<(ProductView, MerchantView)>> {
    card_products::Entity::find()
        .find_both_related(merchants::Entity)
        .filter(condition)
        .all(conn)
        .await?
        .into_iter()
        .map(|(product, merchant)| Ok((product.try_into()?, merchant.try_into()?)))
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
        use card_products::Column as P;
        use merchants::Column as M;
        let denominations: Vec<i64> = product.denominations.iter().map(|d| d.minor()).collect();
        let rate = i32::try_from(merchant.service_rate_bps).unwrap_or(i32::MAX);
        let query = Query::select()
            .expr(Expr::cust("1"))
            .from(card_products::Entity.table_ref())
            .inner_join(
                merchants::Entity.table_ref(),
                Expr::col((merchants::Entity, M::Id))
                    .equals((card_products::Entity, P::MerchantId)),
            )
            .and_where(Expr::col((card_products::Entity, P::Id)).eq(product.id))
            .and_where(Expr::col((card_products::Entity, P::MerchantId)).eq(merchant.id))
            .and_where(Expr::col((card_products::Entity, P::Active)).eq(product.active))
            .and_where(
                Expr::col((card_products::Entity, P::ValidityDays)).eq(product.validity_days),
            )
            .and_where(Expr::col((card_products::Entity, P::Denominations)).eq(denominations))
            .and_where(Expr::col((merchants::Entity, M::Status)).eq(db_name(&merchant.status)))
            .and_where(Expr::col((merchants::Entity, M::ServiceRateBps)).eq(rate))
            .to_owned();
        batch.push_named(name, query);
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
    let mut query =
        card_products::Entity::find().filter(card_products::Column::MerchantId.eq(merchant_id));
    if !include_inactive {
        query = query.filter(card_products::Column::Active.eq(true));
    }
    let query = query
        .apply_if(after, |query, id| {
            query.filter(card_products::Column::Id.gt(id))
        })
        .order_by_asc(card_products::Column::Id)
        .limit(limit);
    all(conn, query).await
}
