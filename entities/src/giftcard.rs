//! The `giftcard` schema: merchants, their branches and card products,
//! escrows, cards, PIN failures and redemptions.

pub mod branches;
pub mod card_products;
pub mod cards;
pub mod escrows;
pub mod merchants;
pub mod pin_failures;
pub mod redemptions;
