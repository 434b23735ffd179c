//! Merchant staff membership (`identity.merchant_staff`): who may act for
//! which merchant. Membership also grants the MERCHANT role.

use giftdrop_entities::identity::merchant_staff;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};
use uuid::Uuid;

use super::Role;
use crate::context::{RequestMeta, Viewer};
use crate::error::DomainResult;

/// Makes `user_id` staff of `merchant_id` and grants MERCHANT, inside the
/// caller's transaction; false if they already were staff.
pub async fn add<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    merchant_id: Uuid,
    user_id: Uuid,
    added_by: Uuid,
) -> DomainResult<bool> {
    let added = merchant_staff::Entity::insert(merchant_staff::ActiveModel {
        merchant_id: Set(merchant_id),
        user_id: Set(user_id),
        added_by: Set(Some(added_by)),
        ..Default::default()
    })
    .on_conflict(OnConflict::new().do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?
        == 1;
    super::grant_within(conn, meta, user_id, Role::Merchant, Some(added_by)).await?;
    Ok(added)
}

/// The merchants `user_id` is staff of.
pub async fn merchants_of<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Vec<Uuid>> {
    Ok(merchant_staff::Entity::find()
        .select_only()
        .column(merchant_staff::Column::MerchantId)
        .filter(merchant_staff::Column::UserId.eq(user_id))
        .order_by_asc(merchant_staff::Column::MerchantId)
        .into_tuple()
        .all(conn)
        .await?)
}

/// What a viewer may do for merchants: admin, or staff of these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// A platform admin sees and does everything.
    pub admin: bool,
    /// The viewer's own user id, when signed in.
    pub user_id: Option<Uuid>,
    /// Merchants the viewer is staff of.
    pub merchants: Vec<Uuid>,
}

impl Reach {
    /// The reach of `viewer` (anonymous: none).
    pub async fn of<C: ConnectionTrait>(conn: &C, viewer: Option<&Viewer>) -> DomainResult<Self> {
        let Some(viewer) = viewer else {
            return Ok(Self::default());
        };
        Ok(Self {
            admin: viewer.is_admin(),
            user_id: Some(viewer.user_id),
            merchants: merchants_of(conn, viewer.user_id).await?,
        })
    }

    /// True when the viewer is staff of `merchant_id`.
    pub fn staff_of(&self, merchant_id: Uuid) -> bool {
        self.merchants.contains(&merchant_id)
    }

    /// True when the viewer is staff of `merchant_id` or an admin.
    pub fn manages(&self, merchant_id: Uuid) -> bool {
        self.admin || self.staff_of(merchant_id)
    }

    /// True when the viewer is `user_id`.
    pub fn is(&self, user_id: Uuid) -> bool {
        self.user_id == Some(user_id)
    }
}
