//! Request validation over arbitrary input: every value is either accepted exactly when the documented
//! rule allows it, or rejected as INVALID_ARGUMENT with a message that starts with the field's name and
//! stays short whatever the input's size; no input panics. Bounded (a few hundred cases each) so it runs
//! in every test run.

use std::collections::HashMap;

use gateway::error::Error;
use gateway::validate::{self, MAX_BASE_PRICE, MAX_BATCH, MAX_ID_LEN};
use proptest::prelude::*;
use tonic::Code;

/// The longest rejection message: the status travels in `grpc-message` metadata, and a caller whose
/// client enforces a metadata limit (8 KiB is common) must get the status, not a transport error.
const MAX_MESSAGE: usize = 256;

/// The rejection is INVALID_ARGUMENT, names `field` first and is at most [`MAX_MESSAGE`] bytes.
fn names(error: Error, field: &str) -> Result<(), TestCaseError> {
    let status = tonic::Status::from(error);
    prop_assert_eq!(status.code(), Code::InvalidArgument);
    prop_assert!(
        status.message().starts_with(field),
        "{:?} does not start with {}",
        status.message(),
        field
    );
    prop_assert!(
        status.message().len() <= MAX_MESSAGE,
        "{} bytes, more than {}: {:.300}",
        status.message().len(),
        MAX_MESSAGE,
        status.message()
    );
    Ok(())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// Strings that hit the edges: empty, control characters, multi-byte characters, 128/129 characters.
fn ids() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,140}",
        "[a-zA-Z0-9_-]{1,129}",
        "\\PC{120,130}",
        Just(String::new()),
        Just("é".repeat(MAX_ID_LEN)),
        Just("é".repeat(MAX_ID_LEN + 1)),
        Just("C0\0".to_owned()),
    ]
}

/// Values far past every limit, as a broken or hostile client sends them: a short head, then one
/// character (any, including those that escape to ten bytes) repeated, or thousands of arbitrary ones.
fn huge() -> impl Strategy<Value = String> {
    prop_oneof![
        (".{0,40}", any::<char>(), 1_000..20_000usize).prop_map(|(head, filler, count)| {
            let mut value = head;
            value.extend(std::iter::repeat_n(filler, count));
            value
        }),
        prop::collection::vec(any::<char>(), 300..3_000).prop_map(String::from_iter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn entity_ids(id in ids()) {
        match validate::entity_id("customer_id", &id) {
            Ok(()) => prop_assert!(valid_id(&id)),
            Err(error) => {
                prop_assert!(!valid_id(&id));
                names(error, "customer_id")?;
            }
        }
    }

    #[test]
    fn batches(ids in prop::collection::vec(ids(), 0..8), padding in 0..MAX_BATCH + 3) {
        let mut ids = ids;
        // Pad with valid ids to reach (and pass) the cap now and then.
        if padding > MAX_BATCH - 8 {
            ids.extend((0..padding).map(|i| format!("C{i}")));
        }
        let expected = !ids.is_empty() && ids.len() <= MAX_BATCH && ids.iter().all(|id| valid_id(id));
        match validate::batch("customer_ids", &ids) {
            Ok(accepted) => {
                prop_assert!(expected);
                prop_assert_eq!(accepted.len(), ids.len());
            }
            Err(error) => {
                prop_assert!(!expected);
                names(error, "customer_ids")?;
            }
        }
    }

    #[test]
    fn contexts(context in prop::collection::hash_map(".{0,70}", ".{0,300}", 0..40)) {
        if let Err(error) = validate::context(&context) {
            names(error, "context")?;
        } else {
            prop_assert!(context.len() <= 32);
        }
    }

    #[test]
    fn base_prices(price in prop_oneof![any::<f64>(), -10.0..2e9f64, Just(f64::NAN), Just(0.0), Just(MAX_BASE_PRICE)]) {
        match validate::base_price(price) {
            Ok(accepted) => {
                prop_assert!(price.is_finite() && price > 0.0 && price <= MAX_BASE_PRICE);
                prop_assert_eq!(accepted, price);
            }
            Err(error) => names(error, "base_price")?,
        }
    }

    #[test]
    fn currencies(code in prop_oneof![".{0,5}", "[A-Z]{3}", "[a-z]{3}"]) {
        match validate::currency(&code) {
            Ok(accepted) => prop_assert!(code.is_empty() && accepted == "USD" || accepted == code),
            Err(error) => names(error, "currency")?,
        }
    }

    #[test]
    fn prediction_times(seconds in any::<i64>(), nanos in any::<i32>(), near in -1_000_000i64..1_000_000) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        for seconds in [seconds, now.saturating_add(near)] {
            let time = prost_types::Timestamp { seconds, nanos };
            if let Err(error) = validate::prediction_time("time", Some(&time)) {
                names(error, "time")?;
            }
        }
    }

    #[test]
    fn quote_ids(id in prop_oneof![".{0,40}", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"]) {
        if let Err(error) = validate::quote_id(&id) {
            names(error, "quote_id")?;
        }
    }

    #[test]
    fn outcomes(booked in any::<bool>(), revenue in prop_oneof![any::<f64>(), 0.0..1e6f64, Just(0.0)]) {
        match validate::outcome(booked, revenue) {
            Ok(()) => prop_assert!(revenue.is_finite() && revenue >= 0.0 && (booked || revenue == 0.0)),
            Err(error) => names(error, "revenue")?,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn huge_entity_ids(id in huge()) {
        names(validate::entity_id("customer_id", &id).expect_err("too long"), "customer_id")?;
    }

    #[test]
    fn huge_batches(huge_ids in prop::collection::vec(huge(), 1..4), padding in 0..MAX_BATCH + 3) {
        let mut ids: Vec<String> = (0..padding).map(|i| format!("C{i}")).collect();
        ids.extend(huge_ids);
        names(validate::batch("customer_ids", &ids).expect_err("too long"), "customer_ids")?;
    }

    #[test]
    fn huge_contexts(
        entries in prop::collection::hash_map(prop_oneof![huge(), ".{1,64}"], prop_oneof![huge(), ".{0,8}"], 1..4),
        padding in 0..40usize,
    ) {
        let mut context = entries;
        context.extend((0..padding).map(|i| (format!("k{i}"), String::new())));
        if let Err(error) = validate::context(&context) {
            names(error, "context")?;
        }
    }

    #[test]
    fn huge_currencies(code in huge()) {
        names(validate::currency(&code).expect_err("not a code"), "currency")?;
    }

    #[test]
    fn huge_quote_ids(id in huge()) {
        names(validate::quote_id(&id).expect_err("not a quote id"), "quote_id")?;
    }

    #[test]
    fn extreme_numbers(value in prop_oneof![any::<f64>(), Just(f64::MAX), Just(f64::MIN), Just(-f64::MIN_POSITIVE), Just(-1e-300)]) {
        if let Err(error) = validate::base_price(value) {
            names(error, "base_price")?;
        }
        for booked in [true, false] {
            if let Err(error) = validate::outcome(booked, value) {
                names(error, "revenue")?;
            }
        }
    }

    #[test]
    fn extreme_times(seconds in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN)], nanos in any::<i32>()) {
        let time = prost_types::Timestamp { seconds, nanos };
        if let Err(error) = validate::prediction_time("time", Some(&time)) {
            names(error, "time")?;
        }
    }
}

/// The case that was reported: a 10,000-character currency came back inside an 8.8 KB message.
#[test]
fn a_huge_currency_is_quoted_by_its_prefix_and_length() {
    let code = "A".repeat(10_000);
    let message = validate::currency(&code).expect_err("not a code").to_string();
    assert!(
        message.len() <= MAX_MESSAGE,
        "{} bytes: {message:.300}",
        message.len()
    );
    assert!(message.starts_with("currency"), "{message}");
    assert!(message.contains("10000 characters"), "{message}");
    assert!(message.contains(&"A".repeat(32)), "{message}");
}

#[test]
fn the_context_cap_names_the_field() {
    let context: HashMap<String, String> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
    let error = validate::context(&context).expect_err("33 entries");
    assert!(error.to_string().starts_with("context"), "{error}");
}
