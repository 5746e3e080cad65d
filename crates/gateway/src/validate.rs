//! Request validation: every field checked, every rejection naming the field and the rule it broke.
//!
//! A rejection quotes at most a short prefix of the offending value, and numbers in a bounded form: the
//! message travels in the `grpc-message` header, and one echoing a huge value would pass the metadata
//! limit many gRPC clients enforce (8 KiB is common), so the caller would get a transport error instead
//! of the status.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use proto::inference::v1::{CustomerOutcome, record_label_request};

use crate::error::Error;
use crate::predictions::Label;

/// Entity ids (customer, zone): 1-128 characters, no control characters.
pub const MAX_ID_LEN: usize = 128;
/// Items per batch call; documented in the proto.
pub const MAX_BATCH: usize = 500;
/// Entries in a request's free-form context.
pub const MAX_CONTEXT_ENTRIES: usize = 32;
pub const MAX_CONTEXT_KEY_LEN: usize = 64;
pub const MAX_CONTEXT_VALUE_LEN: usize = 256;
/// Largest base price accepted: far above any real fare, low enough that x multipliers stays finite.
pub const MAX_BASE_PRICE: f64 = 1e9;
/// The most revenue a booking may claim, as a multiple of the price it was quoted: the fare and what a
/// booking adds to it (tips, add-ons), never a different order of magnitude. Past it the outcome is
/// refused (a unit or currency mistake would otherwise inflate revenue and conversion value).
pub const MAX_REVENUE_MULTIPLE: f64 = 5.0;
/// How far from now a surge prediction may be asked for.
pub const MAX_TIME_SKEW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most of an offending value a message quotes: 32 characters, and 64 bytes once escaped (a control
/// or unassigned character escapes to as many as ten).
const QUOTED_CHARS: usize = 32;
const QUOTED_BYTES: usize = 64;

/// `value` as a message quotes it: escaped and in quotes, and when longer than [`QUOTED_CHARS`] (or
/// [`QUOTED_BYTES`] escaped), its prefix followed by "…" and its length in characters.
fn quoted(value: &str) -> String {
    let mut escaped_len = 0;
    let mut end = 0;
    for (at, c) in value.char_indices().take(QUOTED_CHARS) {
        escaped_len += c.escape_debug().len();
        if escaped_len > QUOTED_BYTES {
            break;
        }
        end = at + c.len_utf8();
    }
    if end == value.len() {
        format!("{value:?}")
    } else {
        let prefix = &value[..end];
        format!("{prefix:?}… ({} characters)", value.chars().count())
    }
}

/// A number as a message quotes it: as written when short, else in scientific notation (`1e300` rather
/// than 301 digits, `1e-300` rather than 302).
fn number(value: f64) -> String {
    let plain = value.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{value:e}")
    }
}

pub fn entity_id(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} characters, got {chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

pub fn batch<'a>(field: &str, ids: &'a [String]) -> Result<&'a [String], Error> {
    if ids.is_empty() {
        return Err(Error::invalid(field, "must hold at least one id"));
    }
    if ids.len() > MAX_BATCH {
        return Err(Error::invalid(
            field,
            format!("holds {} ids; the cap is {MAX_BATCH}", ids.len()),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        entity_id(&format!("{field}[{i}]"), id)?;
    }
    Ok(ids)
}

pub fn context(context: &HashMap<String, String>) -> Result<(), Error> {
    if context.len() > MAX_CONTEXT_ENTRIES {
        return Err(Error::invalid(
            "context",
            format!(
                "holds {} entries; the cap is {MAX_CONTEXT_ENTRIES}",
                context.len()
            ),
        ));
    }
    for (key, value) in context {
        if key.is_empty() || key.len() > MAX_CONTEXT_KEY_LEN {
            return Err(Error::invalid(
                "context",
                format!("keys must be 1-{MAX_CONTEXT_KEY_LEN} bytes"),
            ));
        }
        if value.len() > MAX_CONTEXT_VALUE_LEN {
            return Err(Error::invalid(
                format!("context[{key}]"),
                format!("must be at most {MAX_CONTEXT_VALUE_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

pub fn base_price(value: f64) -> Result<f64, Error> {
    if !value.is_finite() {
        return Err(Error::invalid("base_price", "must be a finite number"));
    }
    if value <= 0.0 {
        return Err(Error::invalid(
            "base_price",
            format!("must be greater than 0, got {}", number(value)),
        ));
    }
    if value > MAX_BASE_PRICE {
        return Err(Error::invalid(
            "base_price",
            format!("must be at most {MAX_BASE_PRICE}, got {}", number(value)),
        ));
    }
    Ok(value)
}

/// The ISO 4217 code of a circulating currency (not a fund, a precious metal, a testing or "no currency"
/// code, nor one superseded by another); empty means USD.
pub fn currency(value: &str) -> Result<String, Error> {
    if value.is_empty() {
        return Ok("USD".to_owned());
    }
    let circulating = iso_currency::Currency::from_code(value)
        .filter(|c| !c.is_fund() && !c.is_special() && c.is_superseded().is_none());
    match circulating {
        Some(_) => Ok(value.to_owned()),
        None => Err(Error::invalid(
            "currency",
            format!(
                "must be the ISO 4217 code of a circulating currency, such as USD or EUR, got {}",
                quoted(value)
            ),
        )),
    }
}

/// The time a surge is asked for: now when absent, else within [`MAX_TIME_SKEW`] of now.
pub fn prediction_time(field: &str, time: Option<&prost_types::Timestamp>) -> Result<SystemTime, Error> {
    let now = SystemTime::now();
    let Some(time) = time else { return Ok(now) };
    let time: SystemTime = (*time)
        .try_into()
        .map_err(|_| Error::invalid(field, "is not a valid timestamp"))?;
    let skew = match time.duration_since(now) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if skew > MAX_TIME_SKEW {
        return Err(Error::invalid(field, "must be within 7 days of now"));
    }
    Ok(time)
}

pub fn quote_id(value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid("quote_id", "must not be empty"));
    }
    if uuid::Uuid::try_parse(value).is_err() {
        return Err(Error::invalid(
            "quote_id",
            "must be a quote id returned by QuotePrice",
        ));
    }
    Ok(())
}

/// A `prediction_id` a prediction returned (a UUID).
pub fn prediction_id(value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid("prediction_id", "must not be empty"));
    }
    if uuid::Uuid::try_parse(value).is_err() {
        return Err(Error::invalid(
            "prediction_id",
            "must be a prediction_id a prediction returned",
        ));
    }
    Ok(())
}

/// A RecordLabel's label: a known customer outcome, or a realised surge factor that is a finite number
/// above 0.
pub fn label(label: Option<&record_label_request::Label>) -> Result<Label, Error> {
    match label {
        None => Err(Error::invalid(
            "label",
            "must be set: customer_outcome (customer risk) or realised_surge_factor (demand surge)",
        )),
        Some(record_label_request::Label::CustomerOutcome(outcome)) => {
            match CustomerOutcome::try_from(*outcome) {
                Ok(CustomerOutcome::Good) => Ok(Label::Customer {
                    bad: false,
                    outcome: *outcome,
                }),
                Ok(
                    CustomerOutcome::Default
                    | CustomerOutcome::Chargeback
                    | CustomerOutcome::AbusiveCancellation,
                ) => Ok(Label::Customer {
                    bad: true,
                    outcome: *outcome,
                }),
                Ok(CustomerOutcome::Unspecified) | Err(_) => Err(Error::invalid(
                    "customer_outcome",
                    format!(
                        "{outcome} is not a customer outcome: GOOD, DEFAULT, CHARGEBACK or ABUSIVE_CANCELLATION"
                    ),
                )),
            }
        }
        Some(record_label_request::Label::RealisedSurgeFactor(factor)) => {
            if factor.is_finite() && *factor > 0.0 {
                Ok(Label::Surge { factor: *factor })
            } else {
                Err(Error::invalid(
                    "realised_surge_factor",
                    format!("{factor} is not a surge factor: a finite number above 0"),
                ))
            }
        }
    }
}

/// `revenue` against the price it was quoted (`price` in `currency`): at most [`MAX_REVENUE_MULTIPLE`]
/// times it.
pub fn revenue_within_quote(revenue: f64, price: f64, currency: &str) -> Result<(), Error> {
    match revenue <= MAX_REVENUE_MULTIPLE * price {
        true => Ok(()),
        false => Err(revenue_over_quote(revenue, price, currency)),
    }
}

/// The refusal of a `revenue` over [`MAX_REVENUE_MULTIPLE`] times the quoted `price`.
pub fn revenue_over_quote(revenue: f64, price: f64, currency: &str) -> Error {
    Error::invalid(
        "revenue",
        format!(
            "must be at most {MAX_REVENUE_MULTIPLE} times the quoted price ({price:.2} {currency}), got {}",
            number(revenue)
        ),
    )
}

/// Lowest and highest satisfaction score an outcome may report.
pub const SATISFACTION_RANGE: std::ops::RangeInclusive<f64> = 1.0..=5.0;

pub fn satisfaction(score: Option<f64>) -> Result<(), Error> {
    match score {
        Some(score) if !SATISFACTION_RANGE.contains(&score) => Err(Error::invalid(
            "satisfaction",
            format!("must be a score from 1 to 5 when given, got {}", number(score)),
        )),
        _ => Ok(()),
    }
}

pub fn outcome(booked: bool, revenue: f64) -> Result<(), Error> {
    if !revenue.is_finite() || revenue < 0.0 {
        return Err(Error::invalid(
            "revenue",
            format!("must be a finite number >= 0, got {}", number(revenue)),
        ));
    }
    if !booked && revenue != 0.0 {
        return Err(Error::invalid("revenue", "must be 0 when booked is false"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(entity_id("customer_id", "C000001").is_ok());
        let err = entity_id("customer_id", "").unwrap_err().to_string();
        assert!(err.starts_with("customer_id:"), "{err}");
        assert!(entity_id("customer_id", &"x".repeat(129)).is_err());
        assert!(entity_id("customer_id", &"é".repeat(128)).is_ok());
        assert!(entity_id("customer_id", "a\nb").is_err());
    }

    #[test]
    fn batches() {
        let ids: Vec<String> = (0..MAX_BATCH).map(|i| format!("C{i}")).collect();
        assert!(batch("customer_ids", &ids).is_ok());
        let over: Vec<String> = (0..=MAX_BATCH).map(|i| format!("C{i}")).collect();
        assert!(
            batch("customer_ids", &over)
                .unwrap_err()
                .to_string()
                .contains("cap is 500")
        );
        let bad = vec!["C1".to_owned(), String::new()];
        assert!(
            batch("customer_ids", &bad)
                .unwrap_err()
                .to_string()
                .starts_with("customer_ids[1]")
        );
        assert!(batch("customer_ids", &[]).is_err());
    }

    #[test]
    fn prices_and_outcomes() {
        assert!(base_price(10.0).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert!(
                base_price(bad).unwrap_err().to_string().starts_with("base_price"),
                "{bad}"
            );
        }
        assert_eq!(currency("").unwrap(), "USD");
        assert_eq!(currency("EUR").unwrap(), "EUR");
        assert_eq!(currency("JPY").unwrap(), "JPY");
        assert!(currency("usd").is_err());
        // Three capital letters, but no currency: invented, testing, "no currency", gold, a fund.
        for code in ["XYZ", "XTS", "XXX", "XAU", "BOV"] {
            let err = currency(code).unwrap_err().to_string();
            assert!(err.contains("ISO 4217") && err.contains(code), "{code}: {err}");
        }
        assert!(outcome(true, 12.5).is_ok());
        assert!(outcome(false, 0.0).is_ok());
        assert!(outcome(false, 3.0).is_err());
        assert!(outcome(true, f64::NAN).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("usd"), "\"usd\"");
        assert_eq!(quoted(&"a".repeat(32)), format!("{:?}", "a".repeat(32)));
        assert_eq!(
            quoted(&"a".repeat(33)),
            format!("{:?}… (33 characters)", "a".repeat(32))
        );
        // Escapes count against the byte budget: six `\u{10ffff}` (ten bytes each) fit in 64.
        let unassigned = "\u{10ffff}".repeat(40);
        assert_eq!(
            quoted(&unassigned),
            format!("{:?}… (40 characters)", "\u{10ffff}".repeat(6))
        );
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(1e300), "1e300");
        assert_eq!(number(-1e-300), "-1e-300");
    }

    #[test]
    fn times() {
        assert!(prediction_time("time", None).is_ok());
        let far = prost_types::Timestamp { seconds: 0, nanos: 0 };
        assert!(prediction_time("time", Some(&far)).is_err());
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: -5,
        };
        assert!(prediction_time("time", Some(&bad)).is_err());
    }
}
