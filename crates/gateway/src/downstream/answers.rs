//! The feature-service's answer as the gateway reads it.
//!
//! `GetOnlineFeaturesResponse` also carries the feature names (the request's own, in its order) and an
//! event time per value; the gateway places values by position and judges freshness by the status the
//! feature-service sets, so it reads neither. Declaring only what it reads lets protobuf skip the rest
//! on the wire: a name and a timestamp per feature of a quote were each decoded into memory of their
//! own and dropped unread before.

use proto::feast::types::Value;
use proto::features::v1::FieldStatus;

/// `features.v1.GetOnlineFeaturesResponse`, its `results` only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnlineFeatures {
    /// One column per feature asked for, in the request's order.
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<FeatureColumn>,
}

/// `features.v1.FeatureVector`, its values and statuses only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureColumn {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
    #[prost(enumeration = "FieldStatus", repeated, tag = "2")]
    pub statuses: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use proto::feast::types::value::Val;
    use proto::features::v1::{FeatureVector, GetOnlineFeaturesResponse};

    use super::*;

    #[test]
    fn reads_the_values_and_statuses_of_the_full_answer() {
        let value = |v: f64| Value {
            val: Some(Val::DoubleVal(v)),
        };
        let full = GetOnlineFeaturesResponse {
            feature_names: vec![
                "customer_profile:chargebacks_1y".into(),
                "zone_demand:orders_15m".into(),
            ],
            results: vec![
                FeatureVector {
                    values: vec![value(2.0), Value::default()],
                    statuses: vec![FieldStatus::Present as i32, FieldStatus::NotFound as i32],
                    event_timestamps: vec![prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }],
                },
                FeatureVector {
                    values: vec![
                        Value {
                            val: Some(Val::StringVal("x".into())),
                        },
                        value(-1.5),
                    ],
                    statuses: vec![FieldStatus::OutsideMaxAge as i32, FieldStatus::Unavailable as i32],
                    event_timestamps: Vec::new(),
                },
            ],
        };
        let read = OnlineFeatures::decode(full.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(read.results.len(), full.results.len());
        for (column, vector) in read.results.iter().zip(&full.results) {
            assert_eq!(column.values, vector.values);
            assert_eq!(column.statuses, vector.statuses);
        }
    }
}
