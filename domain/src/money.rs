//! Money: whole minor units of the one platform currency, never negative,
//! with checked arithmetic and the ONE rounding function for fees.
//!
//! No floating point is used anywhere on a money path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An amount of money in minor units (kobo, cents). Never negative.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

/// Why a value is not an [`Amount`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Zero where a positive amount is required.
    #[error("must be greater than zero")]
    Zero,
    /// Not a whole number of minor units written in digits.
    #[error("must be a whole number of minor units, e.g. \"250000\"")]
    NotAnInteger,
    /// Larger than the ledger can hold.
    #[error("is too large")]
    Overflow,
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);
    /// The largest amount the ledger holds (a Postgres BIGINT).
    pub const MAX: Amount = Amount(i64::MAX);

    /// A non-negative amount of minor units.
    pub fn new(minor: i64) -> Result<Self, AmountError> {
        if minor < 0 {
            Err(AmountError::Negative)
        } else {
            Ok(Self(minor))
        }
    }

    /// A strictly positive amount, as every money input must be.
    pub fn positive(minor: i64) -> Result<Self, AmountError> {
        match Self::new(minor)? {
            Self(0) => Err(AmountError::Zero),
            amount => Ok(amount),
        }
    }

    /// Parses the API form: ASCII digits only (no sign, no decimal point,
    /// no exponent, no spaces), strictly positive.
    pub fn parse_positive(text: &str) -> Result<Self, AmountError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(if text.starts_with('-') && text.len() > 1 {
                AmountError::Negative
            } else {
                AmountError::NotAnInteger
            });
        }
        let minor = text.parse::<i64>().map_err(|_| AmountError::Overflow)?;
        Self::positive(minor)
    }

    /// Minor units.
    pub fn minor(self) -> i64 {
        self.0
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would go below zero.
    #[must_use]
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).filter(|v| *v >= 0).map(Amount)
    }

    /// The sum of `amounts`, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Amount>) -> Option<Amount> {
        amounts
            .into_iter()
            .try_fold(Amount::ZERO, Amount::checked_add)
    }

    /// `self x count`, or `None` on overflow.
    #[must_use]
    pub fn checked_mul(self, count: u32) -> Option<Amount> {
        self.0.checked_mul(i64::from(count)).map(Amount)
    }

    /// `self x bps / 10000`, rounded half up: THE rounding rule of every
    /// basis-point fee (FLOWS.md §3). Never more than `self` while
    /// `bps <= 10000`.
    #[must_use]
    pub fn bps_half_up(self, bps: u32) -> Amount {
        let scaled = i128::from(self.0) * i128::from(bps);
        let rounded = (scaled + 5_000) / 10_000;
        // bps is a u32, so the result is at most self x 429497: for the
        // amounts a BIGINT ledger holds with bps <= 10000 it always fits; a
        // larger product saturates rather than wrap.
        Amount(i64::try_from(rounded).unwrap_or(i64::MAX))
    }
}

impl TryFrom<i64> for Amount {
    type Error = AmountError;

    fn try_from(minor: i64) -> Result<Self, AmountError> {
        Amount::new(minor)
    }
}

impl From<Amount> for i64 {
    fn from(amount: Amount) -> i64 {
        amount.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Digits only; zero allowed (provider fees may be zero).
    fn from_str(text: &str) -> Result<Self, AmountError> {
        match Amount::parse_positive(text) {
            Err(AmountError::Zero) => Ok(Amount::ZERO),
            other => other,
        }
    }
}

/// The fee split of a settled escrow (FLOWS.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// Returned to the provider-fees account it was booked against.
    pub deposit_fee: Amount,
    /// Platform revenue.
    pub service_fee: Amount,
    /// Credited to the merchant.
    pub merchant_payout: Amount,
}

impl Settlement {
    /// `depositFee = A x d`, `serviceFee = (A - depositFee) x s`, both
    /// rounded half up; the merchant gets the rest. The three always sum to
    /// `amount` exactly while `d, s <= 10000`.
    pub fn of(amount: Amount, deposit_fee_bps: u32, service_rate_bps: u32) -> Settlement {
        let deposit_fee = amount.bps_half_up(deposit_fee_bps.min(10_000));
        let rest = amount.checked_sub(deposit_fee).unwrap_or(Amount::ZERO);
        let service_fee = rest.bps_half_up(service_rate_bps.min(10_000));
        let merchant_payout = rest.checked_sub(service_fee).unwrap_or(Amount::ZERO);
        Settlement {
            deposit_fee,
            service_fee,
            merchant_payout,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_api_form_only() {
        assert_eq!(Amount::parse_positive("250000"), Ok(Amount(250_000)));
        assert_eq!(Amount::parse_positive("0"), Err(AmountError::Zero));
        assert_eq!(Amount::parse_positive("-5"), Err(AmountError::Negative));
        assert_eq!(
            Amount::parse_positive("1.5"),
            Err(AmountError::NotAnInteger)
        );
        assert_eq!(
            Amount::parse_positive("1e3"),
            Err(AmountError::NotAnInteger)
        );
        assert_eq!(Amount::parse_positive(" 1"), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse_positive(""), Err(AmountError::NotAnInteger));
        assert_eq!(Amount::parse_positive("-"), Err(AmountError::NotAnInteger));
        assert_eq!(
            Amount::parse_positive("9223372036854775807"),
            Ok(Amount::MAX)
        );
        assert_eq!(
            Amount::parse_positive("9223372036854775808"),
            Err(AmountError::Overflow)
        );
        assert_eq!("0".parse::<Amount>(), Ok(Amount::ZERO));
    }

    #[test]
    fn rounds_half_up() {
        // 1 x 5000 bps = 0.5 -> 1; 1 x 4999 bps = 0.4999 -> 0.
        assert_eq!(Amount(1).bps_half_up(5_000), Amount(1));
        assert_eq!(Amount(1).bps_half_up(4_999), Amount(0));
        assert_eq!(Amount(250_000).bps_half_up(150), Amount(3_750));
        assert_eq!(Amount(33_333).bps_half_up(150), Amount(500)); // 499.995
        assert_eq!(Amount(33_330).bps_half_up(150), Amount(500)); // 499.95
        assert_eq!(Amount(33_300).bps_half_up(150), Amount(500)); // 499.5
        assert_eq!(Amount(33_299).bps_half_up(150), Amount(499)); // 499.485
        assert_eq!(Amount::MAX.bps_half_up(10_000), Amount::MAX);
    }

    #[test]
    fn settles_the_contract_example_exactly() {
        assert_eq!(
            Settlement::of(Amount(500_000), 150, 500),
            Settlement {
                deposit_fee: Amount(7_500),
                service_fee: Amount(24_625),
                merchant_payout: Amount(467_875),
            }
        );
    }

    #[test]
    fn checked_arithmetic_refuses_overflow_and_negatives() {
        assert_eq!(Amount::MAX.checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(5).checked_mul(3), Some(Amount(15)));
        assert_eq!(Amount::MAX.checked_mul(2), None);
        assert_eq!(Amount::checked_sum([Amount(1), Amount(2)]), Some(Amount(3)));
        assert_eq!(Amount::checked_sum([Amount::MAX, Amount(1)]), None);
        assert_eq!(serde_json::from_str::<Amount>("-1").ok(), None);
    }

    /// Half-up rounding of n/10000 by exact rational comparison.
    fn reference_half_up(amount: i64, bps: u32) -> i128 {
        let product = i128::from(amount) * i128::from(bps);
        let (q, r) = (product / 10_000, product % 10_000);
        if 2 * r >= 10_000 { q + 1 } else { q }
    }

    proptest! {
        #[test]
        fn rounding_matches_exact_half_up(amount in 0i64..=i64::MAX, bps in 0u32..=10_000) {
            let rounded = Amount(amount).bps_half_up(bps);
            prop_assert_eq!(i128::from(rounded.minor()), reference_half_up(amount, bps));
            prop_assert!(rounded <= Amount(amount));
            // Within half a unit of the exact value.
            let exact_x2 = 2 * i128::from(amount) * i128::from(bps);
            let diff = (i128::from(rounded.minor()) * 20_000 - exact_x2).abs();
            prop_assert!(diff <= 10_000);
        }

        #[test]
        fn settlement_parts_sum_to_the_amount(amount in 0i64..=i64::MAX, d in 0u32..=10_000, s in 0u32..=10_000) {
            let split = Settlement::of(Amount(amount), d, s);
            let total = Amount::checked_sum([split.deposit_fee, split.service_fee, split.merchant_payout]);
            prop_assert_eq!(total, Some(Amount(amount)));
        }

        #[test]
        fn parse_round_trips(amount in 1i64..=i64::MAX) {
            prop_assert_eq!(Amount::parse_positive(&amount.to_string()), Ok(Amount(amount)));
        }
    }
}
