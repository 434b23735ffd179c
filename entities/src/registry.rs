//! The one list of every entity, with what each declares about its table.

use sea_orm::{
    ActiveEnum, ColumnDef, ColumnTrait, EntityTrait, IdenStatic, Iterable, PrimaryKeyToColumn,
};

use crate::{giftcard, giveaway, identity, ledger, ops};

/// A table as its entity declares it.
#[derive(Clone, Debug)]
pub struct Table {
    /// The Postgres schema.
    pub schema: String,
    /// The table's name within its schema.
    pub name: String,
    /// Every column, in declaration order, with its type and nullability.
    pub columns: Vec<(String, ColumnDef)>,
    /// The primary key's columns, in order.
    pub primary_key: Vec<String>,
    /// Text columns holding a closed set (a `DeriveActiveEnum`), with the
    /// set's values.
    pub closed: Vec<(String, Vec<String>)>,
}

impl Table {
    fn of<E: EntityTrait>() -> Self {
        let entity = E::default();
        Self {
            schema: entity.schema_name().unwrap_or("public").to_owned(),
            name: entity.table_name().to_owned(),
            columns: E::Column::iter()
                .map(|column| (column.as_str().to_owned(), column.def()))
                .collect(),
            primary_key: E::PrimaryKey::iter()
                .map(|key| key.into_column().as_str().to_owned())
                .collect(),
            closed: Vec::new(),
        }
    }

    /// Records that `column` holds the values of `A`.
    fn closed<A: ActiveEnum<Value = String>>(mut self, column: impl IdenStatic) -> Self {
        self.closed.push((column.as_str().to_owned(), A::values()));
        self
    }
}

/// Every entity's table. A new entity must be added here, or the agreement
/// test finds its table without one.
pub fn tables() -> Vec<Table> {
    use giftcard::{branches, card_products, cards, escrows, merchants, pin_failures, redemptions};
    use giveaway::{events, participants, prize_units, prizes, winners};
    use identity::{merchant_staff, user_roles, users};
    use ledger::{accounts, entries, idempotency_keys, payouts, topups, transfers};
    use ops::{audit_log, outbox};

    vec![
        Table::of::<users::Entity>(),
        Table::of::<user_roles::Entity>().closed::<user_roles::Role>(user_roles::Column::Role),
        Table::of::<merchant_staff::Entity>(),
        Table::of::<merchants::Entity>().closed::<merchants::Status>(merchants::Column::Status),
        Table::of::<branches::Entity>(),
        Table::of::<card_products::Entity>(),
        Table::of::<escrows::Entity>()
            .closed::<escrows::Status>(escrows::Column::Status)
            .closed::<escrows::Source>(escrows::Column::Source),
        Table::of::<cards::Entity>().closed::<cards::Status>(cards::Column::Status),
        Table::of::<pin_failures::Entity>(),
        Table::of::<redemptions::Entity>(),
        Table::of::<events::Entity>()
            .closed::<events::Selection>(events::Column::Selection)
            .closed::<events::Status>(events::Column::Status),
        Table::of::<prizes::Entity>(),
        Table::of::<prize_units::Entity>(),
        Table::of::<participants::Entity>()
            .closed::<participants::Status>(participants::Column::Status),
        Table::of::<winners::Entity>(),
        Table::of::<accounts::Entity>().closed::<accounts::Kind>(accounts::Column::Kind),
        Table::of::<transfers::Entity>().closed::<transfers::Kind>(transfers::Column::Kind),
        Table::of::<entries::Entity>().closed::<entries::Direction>(entries::Column::Direction),
        Table::of::<topups::Entity>().closed::<topups::Status>(topups::Column::Status),
        Table::of::<payouts::Entity>().closed::<payouts::Status>(payouts::Column::Status),
        Table::of::<idempotency_keys::Entity>()
            .closed::<idempotency_keys::State>(idempotency_keys::Column::State),
        Table::of::<outbox::Entity>().closed::<outbox::Kind>(outbox::Column::Kind),
        Table::of::<audit_log::Entity>(),
    ]
}
