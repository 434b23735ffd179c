//! The `identity` schema: users, their roles, and merchant staff.

pub mod merchant_staff;
pub mod user_roles;
pub mod users;
