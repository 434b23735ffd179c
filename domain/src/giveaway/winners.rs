//! The winners of events, as read (FLOWS.md §5): one prize unit held by
//! one participant each.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway::{events, participants, winners};
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DerivePartialModel, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::coalesce::Coalescer;
use crate::error::{DomainError, DomainResult};
use crate::sql::bug;

/// A winner: one prize unit held by one participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinnerView {
    /// Winner id.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// Who won.
    pub participant_id: Uuid,
    /// The winner's user.
    pub user_id: Uuid,
    /// The event's host (who sees names in full).
    pub host_id: Uuid,
    /// The participant's display name, unmasked.
    pub display_name: String,
    /// The prize won.
    pub prize_id: Uuid,
    /// The card issued for it.
    pub card_id: Uuid,
    /// Position in the order of announcement, from 1.
    pub sequence: i32,
    /// When it was announced.
    pub announced_at: DateTime<Utc>,
    /// When it was disqualified.
    pub disqualified_at: Option<DateTime<Utc>>,
}

/// The columns of a [`WinnerView`]: the win's, its participant's and its
/// event's.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "winners::Entity")]
struct WinnerRow {
    id: Uuid,
    event_id: Uuid,
    participant_id: Uuid,
    #[sea_orm(from_expr = "Expr::col((participants::Entity, participants::Column::UserId))")]
    user_id: Uuid,
    #[sea_orm(from_expr = "Expr::col((events::Entity, events::Column::HostId))")]
    host_id: Uuid,
    #[sea_orm(from_expr = "Expr::col((participants::Entity, participants::Column::DisplayName))")]
    display_name: String,
    prize_id: Uuid,
    card_id: Uuid,
    sequence: i32,
    announced_at: DateTime<Utc>,
    disqualified_at: Option<DateTime<Utc>>,
}

impl From<WinnerRow> for WinnerView {
    fn from(row: WinnerRow) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            participant_id: row.participant_id,
            user_id: row.user_id,
            host_id: row.host_id,
            display_name: row.display_name,
            prize_id: row.prize_id,
            card_id: row.card_id,
            sequence: row.sequence,
            announced_at: row.announced_at,
            disqualified_at: row.disqualified_at,
        }
    }
}

/// The winners matching `condition`, in `order`.
async fn winners_where<C: ConnectionTrait>(
    conn: &C,
    condition: impl IntoCondition,
    order: impl FnOnce(Select<winners::Entity>) -> Select<winners::Entity>,
) -> DomainResult<Vec<WinnerView>> {
    let query = winners::Entity::find()
        .inner_join(participants::Entity)
        .inner_join(events::Entity)
        .filter(condition);
    Ok(order(query)
        .into_partial_model::<WinnerRow>()
        .all(conn)
        .await?
        .into_iter()
        .map(WinnerView::from)
        .collect())
}

/// The winners of these events, each event's oldest first, in one query.
pub async fn winners_of<C: ConnectionTrait>(
    conn: &C,
    event_ids: &[Uuid],
) -> DomainResult<Vec<WinnerView>> {
    winners_where(
        conn,
        Expr::col((winners::Entity, winners::Column::EventId)).eq(PgFunc::any(event_ids.to_vec())),
        |q| {
            q.order_by_asc(winners::Column::EventId)
                .order_by_asc(winners::Column::Sequence)
        },
    )
    .await
}

/// `event_id`'s winners announced after sequence `after`, in order.
pub async fn winners_after<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    after: i32,
) -> DomainResult<Vec<WinnerView>> {
    winners_where(
        conn,
        winners::Column::EventId
            .eq(event_id)
            .and(winners::Column::Sequence.gt(after)),
        |q| q.order_by_asc(winners::Column::Sequence),
    )
    .await
}

/// Reads of an event's winners after a sequence number that subscribers
/// asking at the same moment share (a resync after a Redis outage sends
/// every subscriber of an event to read at once): a read never shares one
/// that started before it ([`Coalescer`]).
pub type WinnerReads = Arc<Coalescer<(Uuid, i32), Result<Arc<Vec<WinnerView>>, Arc<str>>>>;

/// [`winners_after`] through `reads`, shared with every subscriber of the
/// event that asks for the same winners at the same moment.
pub async fn winners_after_shared(
    reads: &WinnerReads,
    db: &DatabaseConnection,
    event_id: Uuid,
    after: i32,
) -> DomainResult<Vec<WinnerView>> {
    let db = db.clone();
    let joined = reads
        .run((event_id, after), move || async move {
            winners_after(&db, event_id, after)
                .await
                .map(Arc::new)
                .map_err(|error| Arc::from(error.to_string()))
        })
        .await;
    match joined.value {
        Some(Ok(winners)) => Ok(winners.as_ref().clone()),
        Some(Err(error)) => Err(DomainError::Internal(anyhow::anyhow!(
            "reading the winners of event {event_id} failed: {error}"
        ))),
        None => Err(bug("the read of an event's winners panicked")),
    }
}

/// The wins of `user_id` across events, newest first.
pub async fn wins_of<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Vec<WinnerView>> {
    winners_where(conn, participants::Column::UserId.eq(user_id), |q| {
        q.order_by_desc(winners::Column::AnnouncedAt)
            .order_by_desc(winners::Column::Id)
    })
    .await
}

/// The winner `id`.
pub async fn find_winner<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<WinnerView>> {
    Ok(winners_where(conn, winners::Column::Id.eq(id), |q| q)
        .await?
        .pop())
}

/// The participants of `event_id` who ever held one of its prizes.
pub async fn ever_won<C: ConnectionTrait>(conn: &C, event_id: Uuid) -> DomainResult<Vec<Uuid>> {
    winning_participants(conn, wins_in(event_id).distinct()).await
}

/// The participants of `event_id` who hold one of its prizes now.
pub async fn standing_winners<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<Uuid>> {
    winning_participants(
        conn,
        wins_in(event_id).filter(winners::Column::DisqualifiedAt.is_null()),
    )
    .await
}

/// The participant of each win in `event_id`.
fn wins_in(event_id: Uuid) -> Select<winners::Entity> {
    winners::Entity::find()
        .select_only()
        .column(winners::Column::ParticipantId)
        .filter(winners::Column::EventId.eq(event_id))
}

async fn winning_participants<C: ConnectionTrait>(
    conn: &C,
    query: Select<winners::Entity>,
) -> DomainResult<Vec<Uuid>> {
    Ok(query.into_tuple().all(conn).await?)
}
