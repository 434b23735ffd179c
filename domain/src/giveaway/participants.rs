//! Participants of an event and its winners, as read (FLOWS.md §5).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::Viewer;
use crate::error::DomainResult;
use crate::sql::{enum_col, fetch_all, fetch_one, statement};

/// `ParticipantStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipantStatus {
    /// Joined; the social handle is being checked.
    PendingVerification,
    /// May win.
    Verified,
    /// The social check failed.
    Rejected,
    /// Removed by the host or an admin.
    Disqualified,
}

/// A participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// Participant id.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The person.
    pub user_id: Uuid,
    /// The event's host (who sees names in full).
    pub host_id: Uuid,
    /// Their handle on the event's social network.
    pub social_handle: String,
    /// Their display name when they joined, unmasked.
    pub display_name: String,
    /// Where they stand.
    pub status: ParticipantStatus,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// True once they won a prize of the event.
    pub won: bool,
}

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

/// `displayName` as everyone but the person, the host and admins see it:
/// the first word, then the first letter of the second word and a dot
/// ("Ada Lovelace" -> "Ada L."). A single word stays as it is.
pub fn masked(display_name: &str) -> String {
    let mut words = display_name.split_whitespace();
    let first = words.next().unwrap_or_default();
    match words.next().and_then(|w| w.chars().next()) {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_owned(),
    }
}

/// True when `viewer` sees `user_id`'s details in full in an event hosted
/// by `host_id`: the person, the host and admins.
pub fn sees_in_full(viewer: Option<&Viewer>, host_id: Uuid, user_id: Uuid) -> bool {
    viewer.is_some_and(|v| v.user_id == user_id || v.user_id == host_id || v.is_admin())
}

/// The name `viewer` sees for `user_id`'s `display_name` in an event hosted
/// by `host_id` ([`sees_in_full`], else [`masked`]).
pub fn display_name_for(
    viewer: Option<&Viewer>,
    host_id: Uuid,
    user_id: Uuid,
    display_name: &str,
) -> String {
    if sees_in_full(viewer, host_id, user_id) {
        display_name.to_owned()
    } else {
        masked(display_name)
    }
}

/// The columns [`view`] reads.
pub(super) const COLUMNS: &str = "id, event_id, user_id, social_handle, display_name, status, joined_at, won, \
     (SELECT host_id FROM giveaway.events e WHERE e.id = event_id) AS host_id";

/// The participation of user `$2` in event `$1`, its [`COLUMNS`] named
/// `p_...`, beside the row of `giveaway.events` it is joined to (none:
/// every `p_` column NULL); read with [`of_user_beside`].
pub(super) const OF_USER_BESIDE_EVENT: &str = "LEFT JOIN LATERAL (SELECT id AS p_id, event_id AS p_event_id, \
     user_id AS p_user_id, social_handle AS p_social_handle, display_name AS p_display_name, \
     status AS p_status, joined_at AS p_joined_at, won AS p_won, giveaway.events.host_id AS p_host_id \
     FROM giveaway.participants WHERE event_id = $1 AND user_id = $2) p ON true";

/// A participant from a row of [`COLUMNS`].
pub(super) fn view(row: &QueryResult) -> DomainResult<ParticipantView> {
    view_prefixed(row, "")
}

/// The participant of a row read with [`OF_USER_BESIDE_EVENT`], if any.
pub(super) fn of_user_beside(row: &QueryResult) -> DomainResult<Option<ParticipantView>> {
    match row.try_get::<Option<Uuid>>("", "p_id")? {
        Some(_) => view_prefixed(row, "p_").map(Some),
        None => Ok(None),
    }
}

fn view_prefixed(row: &QueryResult, prefix: &str) -> DomainResult<ParticipantView> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(ParticipantView {
        id: row.try_get("", &column("id"))?,
        event_id: row.try_get("", &column("event_id"))?,
        user_id: row.try_get("", &column("user_id"))?,
        host_id: row.try_get("", &column("host_id"))?,
        social_handle: row.try_get("", &column("social_handle"))?,
        display_name: row.try_get("", &column("display_name"))?,
        status: enum_col(row, &column("status"))?,
        joined_at: row.try_get("", &column("joined_at"))?,
        won: row.try_get("", &column("won"))?,
    })
}

/// A page of `event_id`'s participants in joining order, after `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<ParticipantView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giveaway.participants \
             WHERE event_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ),
        vec![
            event_id.into(),
            after.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
        view,
    )
    .await
}

/// The VERIFIED participants of `event_id`.
pub async fn verified<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<ParticipantView>> {
    of_event_where(conn, event_id, "status = 'VERIFIED'").await
}

/// Everyone the DRAW of `event_id` shuffled: the participants VERIFIED
/// when it was drawn (some since DISQUALIFIED).
pub async fn drawn<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<ParticipantView>> {
    of_event_where(
        conn,
        event_id,
        "status IN ('VERIFIED', 'DISQUALIFIED') \
         AND verified_at <= (SELECT drawn_at FROM giveaway.events WHERE id = $1)",
    )
    .await
}

/// The participants of `event_id` (`$1`) matching `condition`, by id.
async fn of_event_where<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    condition: &str,
) -> DomainResult<Vec<ParticipantView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giveaway.participants WHERE event_id = $1 AND {condition} ORDER BY id"
        ),
        vec![event_id.into()],
        view,
    )
    .await
}

/// The participants of `event_id` who ever held one of its prizes.
pub async fn ever_won<C: ConnectionTrait>(conn: &C, event_id: Uuid) -> DomainResult<Vec<Uuid>> {
    winning_participants(
        conn,
        "SELECT DISTINCT participant_id FROM giveaway.winners WHERE event_id = $1",
        event_id,
    )
    .await
}

/// The participants of `event_id` who hold one of its prizes now.
pub async fn standing_winners<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<Uuid>> {
    winning_participants(
        conn,
        "SELECT participant_id FROM giveaway.winners WHERE event_id = $1 AND disqualified_at IS NULL",
        event_id,
    )
    .await
}

async fn winning_participants<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    event_id: Uuid,
) -> DomainResult<Vec<Uuid>> {
    fetch_all(conn, sql, vec![event_id.into()], |r| {
        Ok(r.try_get("", "participant_id")?)
    })
    .await
}

/// `user_id`'s participation in `event_id`, if any.
pub async fn of_user<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    user_id: Uuid,
) -> DomainResult<Option<ParticipantView>> {
    fetch_one(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giveaway.participants WHERE event_id = $1 AND user_id = $2"
        ),
        vec![event_id.into(), user_id.into()],
        view,
    )
    .await
}

/// The participants with these ids, in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<ParticipantView>> {
    crate::sql::by_ids(conn, "giveaway.participants", COLUMNS, ids, view).await
}

const WINNER_COLUMNS: &str = "w.id, w.event_id, w.participant_id, p.user_id, e.host_id, p.display_name, \
     w.prize_id, w.card_id, w.sequence, w.announced_at, w.disqualified_at";

fn winner_view(row: &QueryResult) -> DomainResult<WinnerView> {
    Ok(WinnerView {
        id: row.try_get("", "id")?,
        event_id: row.try_get("", "event_id")?,
        participant_id: row.try_get("", "participant_id")?,
        user_id: row.try_get("", "user_id")?,
        host_id: row.try_get("", "host_id")?,
        display_name: row.try_get("", "display_name")?,
        prize_id: row.try_get("", "prize_id")?,
        card_id: row.try_get("", "card_id")?,
        sequence: row.try_get("", "sequence")?,
        announced_at: row.try_get("", "announced_at")?,
        disqualified_at: row.try_get("", "disqualified_at")?,
    })
}

async fn winners_where<C: ConnectionTrait>(
    conn: &C,
    condition: &str,
    values: Vec<sea_orm::Value>,
) -> DomainResult<Vec<WinnerView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {WINNER_COLUMNS} FROM giveaway.winners w \
             JOIN giveaway.participants p ON p.id = w.participant_id \
             JOIN giveaway.events e ON e.id = w.event_id WHERE {condition}"
        ),
        values,
        winner_view,
    )
    .await
}

/// The winners of these events, each event's oldest first, in one query.
pub async fn winners_of<C: ConnectionTrait>(
    conn: &C,
    event_ids: &[Uuid],
) -> DomainResult<Vec<WinnerView>> {
    winners_where(
        conn,
        "w.event_id = ANY($1) ORDER BY w.event_id, w.sequence",
        vec![event_ids.to_vec().into()],
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
        "w.event_id = $1 AND w.sequence > $2 ORDER BY w.sequence",
        vec![event_id.into(), after.into()],
    )
    .await
}

/// The wins of `user_id` across events, newest first.
pub async fn wins_of<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> DomainResult<Vec<WinnerView>> {
    winners_where(
        conn,
        "p.user_id = $1 ORDER BY w.announced_at DESC, w.id DESC",
        vec![user_id.into()],
    )
    .await
}

/// The winner `id`.
pub async fn find_winner<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<WinnerView>> {
    Ok(winners_where(conn, "w.id = $1", vec![id.into()])
        .await?
        .pop())
}

/// How many participants `event_id` has (its counter is the event's
/// `participant_count`; this counts rows, for checks).
pub async fn count<C: ConnectionTrait>(conn: &C, event_id: Uuid) -> DomainResult<i64> {
    let row = conn
        .query_one_raw(statement(
            "SELECT count(*) AS n FROM giveaway.participants WHERE event_id = $1",
            vec![event_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_to_a_first_word_and_an_initial() {
        assert_eq!(masked("Ada Lovelace"), "Ada L.");
        assert_eq!(masked("  Grace   Brewster Hopper "), "Grace B.");
        assert_eq!(masked("Cher"), "Cher");
        assert_eq!(masked("Émile Ødegaard"), "Émile Ø.");
        assert_eq!(masked(""), "");
    }
}
