//! `giveaway.events`: a host's giveaway, funded at publication, its
//! counters kept on the row.

use sea_orm::entity::prelude::*;

/// How winners are chosen (`selection`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Selection {
    /// Each attempt wins with `win_chance_percent`.
    #[sea_orm(string_value = "INSTANT")]
    Instant,
    /// One committed draw among verified participants at the end.
    #[sea_orm(string_value = "DRAW")]
    Draw,
}

/// Where an event stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Being edited; not funded.
    #[sea_orm(string_value = "DRAFT")]
    Draft,
    /// Published and funded, not started.
    #[sea_orm(string_value = "SCHEDULED")]
    Scheduled,
    /// Between `starts_at` and `ends_at`.
    #[sea_orm(string_value = "LIVE")]
    Live,
    /// Over.
    #[sea_orm(string_value = "ENDED")]
    Ended,
    /// Cancelled (`cancel_reason` set).
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giveaway", table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub host_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    #[sea_orm(column_type = "Text")]
    pub social_post_url: Option<String>,
    pub selection: Selection,
    /// Set exactly for INSTANT events.
    pub win_chance_percent: Option<i32>,
    pub slot_count: i32,
    pub starts_at: ChronoDateTimeUtc,
    pub ends_at: ChronoDateTimeUtc,
    pub status: Status,
    pub prize_count: i32,
    pub prizes_awarded: i32,
    /// What funding the prizes costs the host, minor units.
    pub total_cost: i64,
    pub participant_count: i32,
    /// The last winner's sequence number.
    pub last_sequence: i32,
    /// Raised by every change a subscriber sees, so a stale message is known.
    pub version: i32,
    /// A DRAW's secret seed (32 bytes), revealed after the draw.
    pub draw_seed: Option<Vec<u8>>,
    /// SHA-256 of the seed, hex, published in advance.
    #[sea_orm(column_type = "Text")]
    pub draw_commitment: Option<String>,
    pub drawn_at: Option<ChronoDateTimeUtc>,
    /// The EVENT_FUNDING transfer, set at publication.
    pub funding_transfer_id: Option<Uuid>,
    pub created_at: ChronoDateTimeUtc,
    pub published_at: Option<ChronoDateTimeUtc>,
    pub cancelled_at: Option<ChronoDateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub cancel_reason: Option<String>,
}

/// Relations of an event.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its host.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::HostId",
        to = "crate::identity::users::Column::Id"
    )]
    Host,
    /// The funding transfer.
    #[sea_orm(
        belongs_to = "crate::ledger::transfers::Entity",
        from = "Column::FundingTransferId",
        to = "crate::ledger::transfers::Column::Id"
    )]
    FundingTransfer,
    /// Its prizes.
    #[sea_orm(has_many = "super::prizes::Entity")]
    Prizes,
    /// Its participants.
    #[sea_orm(has_many = "super::participants::Entity")]
    Participants,
    /// Its winners.
    #[sea_orm(has_many = "super::winners::Entity")]
    Winners,
}

impl Related<super::prizes::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Prizes.def()
    }
}

impl Related<super::participants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Participants.def()
    }
}

impl Related<super::winners::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Winners.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
