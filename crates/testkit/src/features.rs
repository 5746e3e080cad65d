//! Feature values and requests in the shapes tests write and send: timestamps as the snapshot writes
//! them, Feast values, `GetOnlineFeatures` requests.

use std::time::SystemTime;

/// RFC 3339 in UTC with second precision, the snapshot's timestamp format.
pub fn rfc3339(time: SystemTime) -> String {
    let mut ts = prost_types::Timestamp::from(time);
    ts.nanos = 0;
    ts.to_string()
}

/// A Feast string value (entity ids are strings here).
pub fn string_value(s: &str) -> proto::feast::types::Value {
    proto::feast::types::Value {
        val: Some(proto::feast::types::value::Val::StringVal(s.to_owned())),
    }
}

/// A `GetOnlineFeatures` request for `features` with string entity columns, e.g.
/// `online_request(&["customer_profile:account_age_days"], &[("customer_id", &["C000001"])])`.
pub fn online_request(
    features: &[&str],
    entities: &[(&str, &[&str])],
) -> proto::features::v1::GetOnlineFeaturesRequest {
    proto::features::v1::GetOnlineFeaturesRequest {
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        entities: entities
            .iter()
            .map(|(key, ids)| {
                let column = proto::feast::types::RepeatedValue {
                    val: ids.iter().map(|id| string_value(id)).collect(),
                };
                ((*key).to_owned(), column)
            })
            .collect(),
    }
}
