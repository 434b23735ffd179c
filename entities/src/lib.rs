//! SeaORM entities, one module per Postgres schema. They describe tables and
//! nothing else: rules live in `domain`, and no entity is ever exposed as a
//! GraphQL type.

pub mod identity;
pub mod ops;
