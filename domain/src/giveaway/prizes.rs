//! The prizes of events, as read (FLOWS.md §5).

use giftdrop_entities::giveaway::prizes;
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Select};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::money::Amount;
use crate::sql::bug;

/// A prize of an event: `quantity` cards of one product at one face value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrizeView {
    /// Prize id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// The card product won.
    pub card_product_id: Uuid,
    /// Face value of each card.
    pub face_value: Amount,
    /// Units.
    pub quantity: i32,
    /// Units held by a standing winner.
    pub awarded: i32,
}

impl TryFrom<prizes::Model> for PrizeView {
    type Error = DomainError;

    fn try_from(row: prizes::Model) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            event_id: row.event_id,
            card_product_id: row.card_product_id,
            face_value: Amount::new(row.face_value).map_err(|_| bug("a negative face value"))?,
            quantity: row.quantity,
            awarded: row.awarded,
        })
    }
}

/// The prizes `query` selects, as viewed.
async fn prizes<C: ConnectionTrait>(
    conn: &C,
    query: Select<prizes::Entity>,
) -> DomainResult<Vec<PrizeView>> {
    query
        .all(conn)
        .await?
        .into_iter()
        .map(PrizeView::try_from)
        .collect()
}

/// The prizes of these events, each event's by ascending id, in one query.
pub async fn prizes_of<C: ConnectionTrait>(
    conn: &C,
    event_ids: &[Uuid],
) -> DomainResult<Vec<PrizeView>> {
    prizes(
        conn,
        prizes::Entity::find()
            .filter(
                Expr::col((prizes::Entity, prizes::Column::EventId))
                    .eq(PgFunc::any(event_ids.to_vec())),
            )
            .order_by_asc(prizes::Column::EventId)
            .order_by_asc(Expr::col((prizes::Entity, prizes::Column::Id)).cast_as("text")),
    )
    .await
}

/// The prizes with these ids, in one query.
pub async fn find_prizes<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<PrizeView>> {
    prizes(
        conn,
        prizes::Entity::find()
            .filter(Expr::col((prizes::Entity, prizes::Column::Id)).eq(PgFunc::any(ids.to_vec()))),
    )
    .await
}
