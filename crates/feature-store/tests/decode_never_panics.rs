//! Whatever bytes Redis holds, decoding them never panics.

use feature_store::layout;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn values_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = layout::decode_value(&bytes);
    }

    #[test]
    fn timestamps_decode_in_range_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(ts) = layout::decode_timestamp(&bytes) {
            prop_assert!((0..1_000_000_000).contains(&ts.nanos));
        }
    }

    #[test]
    fn valid_values_round_trip(i in any::<i64>(), d in any::<f64>(), s in ".{0,40}") {
        use proto::feast::types::{Value, value::Val};
        for val in [Val::Int64Val(i), Val::DoubleVal(d), Val::StringVal(s.clone())] {
            let value = Value { val: Some(val) };
            let decoded = layout::decode_value(&layout::encode_value(&value)).expect("round trip");
            // Compare bytes: NaN != NaN.
            prop_assert_eq!(layout::encode_value(&decoded), layout::encode_value(&value));
        }
    }
}
