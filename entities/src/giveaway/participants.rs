//! `giveaway.participants`: a user's entry in an event, once per event.

use sea_orm::entity::prelude::*;

/// Where an entry stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Joined; the social handle not checked yet.
    #[sea_orm(string_value = "PENDING_VERIFICATION")]
    PendingVerification,
    /// Checked: may win.
    #[sea_orm(string_value = "VERIFIED")]
    Verified,
    /// The check failed.
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    /// Removed by the host.
    #[sea_orm(string_value = "DISQUALIFIED")]
    Disqualified,
}

/// One participant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giveaway", table_name = "participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub user_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub social_handle: String,
    /// The user's display name when they joined.
    #[sea_orm(column_type = "Text")]
    pub display_name: String,
    pub status: Status,
    pub joined_at: ChronoDateTimeUtc,
    pub verified_at: Option<ChronoDateTimeUtc>,
    /// When an INSTANT attempt was made.
    pub attempted_at: Option<ChronoDateTimeUtc>,
    pub won: bool,
}

/// Relations of a participant.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The event.
    #[sea_orm(
        belongs_to = "super::events::Entity",
        from = "Column::EventId",
        to = "super::events::Column::Id"
    )]
    Event,
    /// The user.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::UserId",
        to = "crate::identity::users::Column::Id"
    )]
    User,
    /// Their wins (at most one standing).
    #[sea_orm(has_many = "super::winners::Entity")]
    Wins,
}

impl Related<super::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl Related<crate::identity::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::winners::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Wins.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
