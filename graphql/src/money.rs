//! The `Amount` scalar: a whole number of minor units, a JSON string of
//! digits out, a string of digits or a JSON integer in.
//!
//! Parsing never fails at the GraphQL layer: an unusable value (zero,
//! negative, fractional, too large, not a number) is kept with its reason
//! and refused by the resolver with `BAD_USER_INPUT` naming the input
//! `field` (FLOWS.md §1), which a scalar parse error could not carry.

use async_graphql::{Description, InputValueResult, Scalar, ScalarType, Value};
use giftdrop_domain::DomainResult;
use giftdrop_domain::money::{Amount, AmountError};

/// An amount of money as a whole number of minor units (kobo, cents) of the
/// platform currency, serialized as a JSON string of digits, e.g. "250000"
/// for 2,500.00. Inputs accept the same string or a JSON integer. Never
/// negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Description)]
#[graphql(name = "Amount")]
pub struct Money(Result<Amount, AmountError>);

impl Money {
    /// The amount, which must be positive, else `BAD_USER_INPUT` on `field`.
    pub fn positive(self, field: &str) -> DomainResult<Amount> {
        match self.0 {
            Ok(amount) if amount.is_zero() => Err(AmountError::Zero.at(field)),
            Ok(amount) => Ok(amount),
            Err(err) => Err(err.at(field)),
        }
    }

    fn of(value: &Value) -> Result<Amount, AmountError> {
        match value {
            Value::String(text) => text.parse(),
            Value::Number(number) => {
                if let Some(minor) = number.as_i64() {
                    Amount::new(minor)
                } else if number.is_u64() {
                    Err(AmountError::Overflow)
                } else {
                    // A float: fractional, or too large for an i64.
                    match number.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() >= 9.2e18 => Err(if f < 0.0 {
                            AmountError::Negative
                        } else {
                            AmountError::Overflow
                        }),
                        _ => Err(AmountError::NotAnInteger),
                    }
                }
            }
            _ => Err(AmountError::NotAnInteger),
        }
    }
}

impl From<Amount> for Money {
    fn from(amount: Amount) -> Self {
        Self(Ok(amount))
    }
}

#[Scalar(name = "Amount", use_type_description)]
impl ScalarType for Money {
    fn parse(value: Value) -> InputValueResult<Self> {
        Ok(Self(Self::of(&value)))
    }

    fn to_value(&self) -> Value {
        match self.0 {
            Ok(amount) => Value::String(amount.to_string()),
            // Only inputs are ever invalid; they are never written out.
            Err(_) => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> DomainResult<Amount> {
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        let value = Value::from_json(value).expect("graphql value");
        <Money as ScalarType>::parse(value)
            .expect("parse never fails")
            .positive("input.amount")
    }

    #[test]
    fn strings_of_digits_and_integers_are_amounts() {
        assert_eq!(parse(r#""250000""#).expect("ok").minor(), 250_000);
        assert_eq!(parse("250000").expect("ok").minor(), 250_000);
        assert_eq!(parse(&i64::MAX.to_string()).expect("ok").minor(), i64::MAX);
    }

    #[test]
    fn bad_amounts_name_the_field() {
        for bad in [
            "0",
            r#""0""#,
            "-5",
            r#""-5""#,
            "1.5",
            r#""1.5""#,
            r#""1e3""#,
            r#"" 12""#,
            r#""""#,
            "9223372036854775808",
            r#""9223372036854775808""#,
            "1e30",
            "true",
            r#"{"a":1}"#,
        ] {
            match parse(bad) {
                Err(giftdrop_domain::DomainError::BadInput { field, .. }) => {
                    assert_eq!(field, "input.amount", "{bad}");
                }
                other => panic!("{bad} gave {other:?}"),
            }
        }
    }

    #[test]
    fn amounts_are_written_as_strings() {
        let money = Money::from(Amount::new(7).expect("amount"));
        assert_eq!(money.to_value(), Value::String("7".into()));
    }
}
