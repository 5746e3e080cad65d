//! A request message that every attempt of a call sends without copying it.
//!
//! tonic's encoder takes the message by value, so a call that may be retried used to copy its message
//! for every attempt, the first included: a quote's feature request (its feature names and entity ids)
//! and its scoring request (every row) were copied once per call although almost none is retried.
//! [`Shared`] encodes exactly as the message it holds, so the bytes on the wire are the same, and a
//! copy of it is a reference count.

use std::sync::Arc;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

/// `M`, shared by the attempts of one call: it encodes as `M` itself.
#[derive(Debug, Default)]
pub struct Shared<M>(Arc<M>);

impl<M> Shared<M> {
    pub fn new(message: M) -> Self {
        Self(Arc::new(message))
    }
}

impl<M> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<M> std::ops::Deref for Shared<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.0
    }
}

/// Only encoded on the way out; decoding into one (never done here) copies the message first if it is
/// shared, so no other holder sees it change.
impl<M: Message + Clone> Message for Shared<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        Arc::make_mut(&mut self.0).merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        Arc::make_mut(&mut self.0).clear();
    }
}

#[cfg(test)]
mod tests {
    use proto::features::v1::GetOnlineFeaturesRequest;
    use proto::models::v1::{FeatureRow, PredictManyRequest, PredictRequest};

    use super::*;

    #[test]
    fn encodes_as_the_message_it_holds_and_decodes_back() {
        let features = GetOnlineFeaturesRequest {
            features: vec![
                "customer_profile:chargebacks_1y".into(),
                "zone_demand:orders_15m".into(),
            ],
            entities: Default::default(),
        };
        let shared = Shared::new(features.clone());
        assert_eq!(shared.encode_to_vec(), features.encode_to_vec());
        assert_eq!(shared.encoded_len(), features.encoded_len());

        let many = PredictManyRequest {
            requests: vec![PredictRequest {
                model: "customer_risk".into(),
                version: "1".into(),
                rows: vec![FeatureRow {
                    features: Default::default(),
                    values: vec![1.0, f64::NAN, 3.5],
                }],
                ..Default::default()
            }],
        };
        let shared = Shared::new(many.clone());
        let bytes = shared.encode_to_vec();
        assert_eq!(bytes, many.encode_to_vec());
        let back = Shared::<PredictManyRequest>::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back.encode_to_vec(), bytes);
    }

    #[test]
    fn a_copy_shares_the_message_and_decoding_into_one_leaves_the_other_alone() {
        let original = Shared::new(GetOnlineFeaturesRequest {
            features: vec!["a:x".into()],
            entities: Default::default(),
        });
        let mut copy = original.clone();
        assert!(Arc::ptr_eq(&original.0, &copy.0));
        let other = GetOnlineFeaturesRequest {
            features: vec!["b:y".into()],
            entities: Default::default(),
        };
        copy.merge(other.encode_to_vec().as_slice()).expect("merges");
        assert_eq!(original.features, ["a:x"]);
        assert_eq!(copy.features, ["a:x", "b:y"]);
    }
}
