//! What a merchant's staff do with its card products: creating them,
//! taking them on and off sale.

use giftdrop_entities::giftcard::card_products;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use uuid::Uuid;

use super::{ProductView, find_visible};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::merchants::{self, MerchantStatus};
use crate::identity::staff::Reach;
use crate::money::Amount;
use crate::sql::text_input;

/// Most denominations a product may offer.
pub const MAX_DENOMINATIONS: usize = 20;
/// Longest validity, in days (ten years).
pub const MAX_VALIDITY_DAYS: i32 = 3650;

/// `createCardProduct` input, as sent.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// The selling merchant.
    pub merchant_id: Uuid,
    /// Product name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Face values (validated positive by the caller's `Amount` parsing).
    pub denominations: Vec<Amount>,
    /// Validity in days.
    pub validity_days: i32,
}

/// `Forbidden` unless `reach` is staff of `merchant_id` and it is ACTIVE.
async fn require_active_staff<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    merchant_id: Uuid,
) -> DomainResult<()> {
    let merchant = merchants::find_visible(conn, reach, merchant_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !reach.staff_of(merchant_id) || merchant.status != MerchantStatus::Active {
        return Err(DomainError::Forbidden);
    }
    Ok(())
}

fn validate(input: &NewProduct) -> DomainResult<(String, String, Vec<i64>)> {
    let name = text_input(&input.name, "input.name", 1, 200)?;
    let description = text_input(&input.description, "input.description", 0, 2000)?;
    if input.denominations.is_empty() || input.denominations.len() > MAX_DENOMINATIONS {
        return Err(DomainError::bad_input(
            "input.denominations",
            format!("must list 1-{MAX_DENOMINATIONS} face values"),
        ));
    }
    let mut denominations: Vec<i64> = Vec::with_capacity(input.denominations.len());
    for (i, d) in input.denominations.iter().enumerate() {
        if denominations.contains(&d.minor()) {
            return Err(DomainError::bad_input(
                format!("input.denominations[{i}]"),
                "is listed twice",
            ));
        }
        denominations.push(d.minor());
    }
    denominations.sort_unstable();
    if !(1..=MAX_VALIDITY_DAYS).contains(&input.validity_days) {
        return Err(DomainError::bad_input(
            "input.validityDays",
            format!("must be between 1 and {MAX_VALIDITY_DAYS}"),
        ));
    }
    Ok((name, description, denominations))
}

/// `createCardProduct`: staff of an ACTIVE merchant.
pub async fn create(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    input: NewProduct,
) -> DomainResult<ProductView> {
    let (name, description, denominations) = validate(&input)?;
    let reach = Reach::of(&s.db, Some(viewer)).await?;
    require_active_staff(&s.db, &reach, input.merchant_id).await?;
    let txn = s.db.begin().await?;
    let product: ProductView = card_products::Entity::insert(card_products::ActiveModel {
        id: Set(Uuid::now_v7()),
        merchant_id: Set(input.merchant_id),
        name: Set(name),
        description: Set(description),
        denominations: Set(denominations),
        validity_days: Set(input.validity_days),
        ..Default::default()
    })
    .exec_with_returning(&txn)
    .await?
    .try_into()?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "product.create",
            subject: format!("product:{}", product.id),
            detail: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(product)
}

/// `setCardProductActive`: staff of the merchant; putting a product on
/// sale needs an ACTIVE merchant, taking it off sale does not.
pub async fn set_active(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    id: Uuid,
    active: bool,
) -> DomainResult<ProductView> {
    let reach = Reach::of(&s.db, Some(viewer)).await?;
    let product = find_visible(&s.db, &reach, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if active {
        require_active_staff(&s.db, &reach, product.merchant_id).await?;
    } else if !reach.staff_of(product.merchant_id) {
        return Err(DomainError::Forbidden);
    }
    let txn = s.db.begin().await?;
    let updated: ProductView = card_products::Entity::update_many()
        .col_expr(card_products::Column::Active, active.into())
        .filter(card_products::Column::Id.eq(id))
        .exec_with_returning(&txn)
        .await?
        .pop()
        .ok_or(DomainError::NotFound)?
        .try_into()?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: if active {
                "product.activate"
            } else {
                "product.deactivate"
            },
            subject: format!("product:{id}"),
            detail: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}
