//! The `identity` schema: users and their roles.

pub mod user_roles;
pub mod users;
