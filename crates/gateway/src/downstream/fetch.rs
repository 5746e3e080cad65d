//! The feature request as the gateway sends it.
//!
//! A request names every feature it asks for. The names are the models' own lists
//! ([`super::ModelSpec::feature_refs`]), which the request shares rather than copies: a quote's dozen
//! names were a dozen strings made and dropped per request. A repeated field may be written in parts,
//! so the models' lists are written one after the other, and the bytes on the wire are those of one
//! `GetOnlineFeaturesRequest` naming them all.

use std::sync::Arc;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, string};
use prost::{DecodeError, Message};
use proto::features::v1::GetOnlineFeaturesRequest;

/// `features`' field number in `GetOnlineFeaturesRequest`.
const FEATURES: u32 = 1;

/// `features.v1.GetOnlineFeaturesRequest` with its feature names in shared parts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FeatureFetch {
    /// The `features` field, part after part: the names the feature-service reads, in order.
    pub features: Vec<Arc<[String]>>,
    /// The rest of the request: the entity columns (its own `features` stay empty).
    pub rest: GetOnlineFeaturesRequest,
}

impl FeatureFetch {
    /// Every name asked for, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features
            .iter()
            .flat_map(|part| part.iter())
            .chain(&self.rest.features)
            .map(String::as_str)
    }
}

/// Encodes as the `GetOnlineFeaturesRequest` naming every part's features in order; decoding one keeps
/// each name decoded as a part of its own (only tests decode one).
impl Message for FeatureFetch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for part in &self.features {
            string::encode_repeated(FEATURES, part, buf);
        }
        self.rest.encode_raw(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == FEATURES {
            let mut name = String::new();
            string::merge(wire_type, &mut name, buf, ctx)?;
            self.features.push(Arc::from([name]));
            return Ok(());
        }
        self.rest.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.features
            .iter()
            .map(|part| string::encoded_len_repeated(FEATURES, part))
            .sum::<usize>()
            + self.rest.encoded_len()
    }

    fn clear(&mut self) {
        self.features.clear();
        self.rest.clear();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proto::feast::types::value::Val;
    use proto::feast::types::{RepeatedValue, Value};

    use super::*;

    /// An entity column of string ids.
    pub(in crate::downstream) fn ids(ids: &[&str]) -> RepeatedValue {
        RepeatedValue {
            val: ids
                .iter()
                .map(|id| Value {
                    val: Some(Val::StringVal((*id).to_owned())),
                })
                .collect(),
        }
    }

    #[test]
    fn encodes_as_one_request_naming_every_part_in_order() {
        let risk: Arc<[String]> = [
            "customer_profile:chargebacks_1y".to_owned(),
            "customer_profile:age_days".to_owned(),
        ]
        .into();
        let surge: Arc<[String]> = ["zone_demand:orders_15m".to_owned()].into();
        let fetch = FeatureFetch {
            features: vec![Arc::clone(&risk), Arc::clone(&surge)],
            rest: GetOnlineFeaturesRequest {
                features: Vec::new(),
                entities: [
                    ("customer_id".to_owned(), ids(&["C1", "C2"])),
                    ("zone_id".to_owned(), ids(&["Z1", "Z1"])),
                ]
                .into(),
            },
        };
        let whole = GetOnlineFeaturesRequest {
            features: risk.iter().chain(surge.iter()).cloned().collect(),
            entities: fetch.rest.entities.clone(),
        };
        let bytes = fetch.encode_to_vec();
        assert_eq!(bytes.len(), fetch.encoded_len());
        assert_eq!(bytes.len(), whole.encoded_len());
        assert_eq!(
            GetOnlineFeaturesRequest::decode(bytes.as_slice()).expect("decodes"),
            whole
        );
        assert_eq!(
            fetch.names().collect::<Vec<_>>(),
            whole.features.iter().map(String::as_str).collect::<Vec<_>>()
        );

        // Decoding one back names the same features, whatever its parts.
        let back = FeatureFetch::decode(whole.encode_to_vec().as_slice()).expect("decodes");
        assert!(back.names().eq(fetch.names()));
        assert_eq!(back.rest.entities, whole.entities);
    }
}
