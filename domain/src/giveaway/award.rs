//! Awarding a prize unit to a participant (INSTANT attempts and the DRAW
//! alike): a gift card backed by the unit's RESERVED escrow, the event's
//! next sequence number, the winner's email, and the announcements, all in
//! the caller's transaction.

use chrono::Utc;
use giftdrop_entities::giftcard::card_products;
use giftdrop_entities::giveaway as db;
use giftdrop_entities::identity::users;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityName, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QuerySelect, QueryTrait, RelationTrait,
};
use uuid::Uuid;

use super::events::{self, EventView};
use super::live;
use super::participants::ParticipantView;
use super::pool::Unit;
use super::winners::WinnerView;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::giftcard::cards::{self, IssueCard};
use crate::giftcard::products::ProductView;
use crate::jobs::SendEmail;
use crate::money::Amount;
use crate::outbox;
use crate::sql::{Batch, bug};

/// What an award reads besides its unit.
struct Inputs {
    /// The card product of the unit's prize.
    product: ProductView,
    /// The prize's face value.
    face_value: Amount,
    /// Where the winner's email goes.
    email: String,
}

/// The row [`inputs`] reads: the prize's product, the prize's face value
/// and the winner's email.
#[derive(FromQueryResult)]
struct InputsRow {
    #[sea_orm(nested)]
    product: card_products::Model,
    prize_face_value: i64,
    winner_email: Option<String>,
}

/// The [`Inputs`] of an award of a unit of `prize_id` to `user_id`, in one
/// query.
async fn inputs(txn: &DatabaseTransaction, prize_id: Uuid, user_id: Uuid) -> DomainResult<Inputs> {
    let email = Query::select()
        .column(users::Column::Email)
        .from(users::Entity.table_ref())
        .and_where(Expr::col((users::Entity, users::Column::Id)).eq(user_id))
        .to_owned();
    let row = card_products::Entity::find()
        .join(
            JoinType::InnerJoin,
            db::prizes::Relation::CardProduct.def().rev(),
        )
        .filter(db::prizes::Column::Id.eq(prize_id))
        .column_as(db::prizes::Column::FaceValue, "prize_face_value")
        .column_as(Expr::SubQuery(None, Box::new(email.into())), "winner_email")
        .into_model::<InputsRow>()
        .one(txn)
        .await?
        .ok_or_else(|| bug("a unit's prize or its product vanished"))?;
    Ok(Inputs {
        product: row.product.try_into()?,
        face_value: Amount::new(row.prize_face_value).map_err(|_| bug("a negative face value"))?,
        email: row
            .winner_email
            .ok_or_else(|| bug("a participant's user vanished"))?,
    })
}

/// Awards `unit` to `participant` inside `txn`, which holds the unit's
/// lock: issues the card, numbers the win, queues the winner's email and
/// announces the winner and the event. The winner and the event after.
pub(super) async fn award(
    s: &Services,
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    participant: &ParticipantView,
    unit: Unit,
) -> DomainResult<(WinnerView, EventView)> {
    let Inputs {
        product,
        face_value,
        email,
    } = inputs(txn, unit.prize_id, participant.user_id).await?;
    let card = cards::issue(
        txn,
        &s.card_secrets,
        IssueCard {
            product: &product,
            owner_id: participant.user_id,
            escrow_id: unit.escrow_id,
            face_value,
        },
    )
    .await?;
    // The event row last: every winner of the event takes its lock, held
    // from here to the commit.
    let event = events::update_one(
        txn,
        participant.event_id,
        events::changed()
            .col_expr(
                db::events::Column::LastSequence,
                Expr::col(db::events::Column::LastSequence).add(1),
            )
            .col_expr(
                db::events::Column::PrizesAwarded,
                Expr::col(db::events::Column::PrizesAwarded).add(1),
            ),
    )
    .await?;
    let winner = WinnerView {
        id: Uuid::now_v7(),
        event_id: participant.event_id,
        participant_id: participant.id,
        user_id: participant.user_id,
        host_id: participant.host_id,
        display_name: participant.display_name.clone(),
        prize_id: unit.prize_id,
        card_id: card.id,
        sequence: event.last_sequence,
        announced_at: Utc::now(),
        disqualified_at: None,
    };
    let mut rest = Batch::new();
    rest.push(
        db::winners::Entity::insert(db::winners::ActiveModel {
            id: Set(winner.id),
            event_id: Set(winner.event_id),
            participant_id: Set(winner.participant_id),
            prize_id: Set(winner.prize_id),
            unit_id: Set(unit.id),
            card_id: Set(winner.card_id),
            sequence: Set(winner.sequence),
            announced_at: Set(winner.announced_at),
            ..Default::default()
        })
        .into_query(),
    );
    rest.push(
        db::prize_units::Entity::update_many()
            .col_expr(db::prize_units::Column::WinnerId, participant.id.into())
            .filter(db::prize_units::Column::Id.eq(unit.id))
            .filter(db::prize_units::Column::WinnerId.is_null())
            .into_query(),
    );
    rest.push(
        db::prizes::Entity::update_many()
            .col_expr(
                db::prizes::Column::Awarded,
                Expr::col(db::prizes::Column::Awarded).add(1),
            )
            .filter(db::prizes::Column::Id.eq(unit.prize_id))
            .into_query(),
    );
    rest.push(
        db::participants::Entity::update_many()
            .col_expr(db::participants::Column::Won, true.into())
            .filter(db::participants::Column::Id.eq(participant.id))
            .into_query(),
    );
    rest.push(live::announced(meta, &winner)?);
    rest.push(live::changed(meta, &event)?);
    rest.push(outbox::job_statement(
        meta,
        &SendEmail {
            to: email,
            subject: format!("You won a prize in \"{}\"", event.title),
            body: format!(
                "Congratulations, {}! You won a {} gift card in \"{}\". \
                 Find its code and pin under My cards.",
                participant.display_name, face_value, event.title
            ),
            dedupe_key: format!("win:{}", winner.id),
        },
    )?);
    rest.push(audit::statement(
        meta,
        AuditRecord {
            actor: None,
            action: "prize.award",
            subject: format!("winner:{}", winner.id),
            detail: Some(format!(
                "unit {} of prize {} to participant {} (card {})",
                unit.unit, unit.prize_id, participant.id, card.id
            )),
        },
    ));
    rest.execute(txn).await?;
    metrics::counter!("giftdrop_cards_issued_total", "source" => "prize").increment(1);
    Ok((winner, event))
}
