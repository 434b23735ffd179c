//! Awarding a prize unit to a participant (INSTANT attempts and the DRAW
//! alike): a gift card backed by the unit's RESERVED escrow, the event's
//! next sequence number, the winner's email, and the announcements, all in
//! the caller's transaction.

use chrono::Utc;
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::events::{self, EventView};
use super::live;
use super::participants::{ParticipantView, WinnerView};
use super::pool::Unit;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::giftcard::cards::{self, IssueCard};
use crate::giftcard::products::{self, P_COLUMNS, ProductView};
use crate::jobs::SendEmail;
use crate::money::Amount;
use crate::outbox;
use crate::sql::{Batch, amount, bug, fetch_one};

/// What an award reads besides its unit.
struct Inputs {
    /// The card product of the unit's prize.
    product: ProductView,
    /// The prize's face value.
    face_value: Amount,
    /// Where the winner's email goes.
    email: String,
}

/// The [`Inputs`] of an award of a unit of `prize_id` to `user_id`, in one
/// query.
async fn inputs(txn: &DatabaseTransaction, prize_id: Uuid, user_id: Uuid) -> DomainResult<Inputs> {
    let (product, face_value, email) = fetch_one(
        txn,
        &format!(
            "SELECT {P_COLUMNS}, z.face_value AS prize_face_value, \
               (SELECT email FROM identity.users WHERE id = $2) AS winner_email \
             FROM giveaway.prizes z JOIN giftcard.card_products p ON p.id = z.card_product_id \
             WHERE z.id = $1"
        ),
        vec![prize_id.into(), user_id.into()],
        |row| {
            Ok((
                products::view(row)?,
                amount(row, "prize_face_value")?,
                row.try_get::<Option<String>>("", "winner_email")?,
            ))
        },
    )
    .await?
    .ok_or_else(|| bug("a unit's prize or its product vanished"))?;
    Ok(Inputs {
        product,
        face_value,
        email: email.ok_or_else(|| bug("a participant's user vanished"))?,
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
    let event = events::fetch_one_returning(
        txn,
        "UPDATE giveaway.events SET last_sequence = last_sequence + 1, \
         prizes_awarded = prizes_awarded + 1, version = version + 1 WHERE id = $1",
        vec![participant.event_id.into()],
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
    let row = rest.bind_list([
        winner.id.into(),
        winner.event_id.into(),
        winner.participant_id.into(),
        winner.prize_id.into(),
        unit.id.into(),
        winner.card_id.into(),
        winner.sequence.into(),
        winner.announced_at.into(),
    ]);
    rest.sql(format!(
        "INSERT INTO giveaway.winners (id, event_id, participant_id, prize_id, unit_id, card_id, sequence, announced_at) \
         VALUES ({row})"
    ));
    let [unit_id, participant_id, prize_id] =
        rest.binds([unit.id.into(), participant.id.into(), unit.prize_id.into()]);
    rest.sql(format!(
        "UPDATE giveaway.prize_units SET winner_id = {participant_id} WHERE id = {unit_id} AND winner_id IS NULL"
    ));
    rest.sql(format!(
        "UPDATE giveaway.prizes SET awarded = awarded + 1 WHERE id = {prize_id}"
    ));
    rest.sql(format!(
        "UPDATE giveaway.participants SET won = true WHERE id = {participant_id}"
    ));
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
