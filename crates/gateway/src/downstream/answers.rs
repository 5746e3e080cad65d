//! The feature-service's answer as the gateway reads it.
//!
//! `GetOnlineFeaturesResponse` also carries the feature names (the request's own, in its order) and an
//! event time per value; the gateway places values by position and judges freshness by the status the
//! feature-service sets, so it reads neither. Reading only what it uses lets protobuf skip the rest on
//! the wire: a name and a timestamp per feature of a quote were each decoded into memory of their own
//! and dropped unread before.
//!
//! The columns that remain are read into two arrays for the whole answer, one column after another,
//! rather than two vectors per feature: a quote's answer of a dozen features was two dozen allocations.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    self, DecodeContext, WireType, check_wire_type, decode_key, encode_key, encode_varint,
    encoded_len_varint, int32, key_len, message, skip_field,
};
use prost::{DecodeError, Message};
use proto::feast::types::Value;

/// `features.v1.GetOnlineFeaturesResponse`, its `results` only: each `FeatureVector`'s values and
/// statuses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OnlineFeatures {
    /// Every column's values, column after column.
    values: Vec<Value>,
    /// Every column's statuses (`FieldStatus`), column after column.
    statuses: Vec<i32>,
    /// Where each column's values and statuses end, in the answer's (the request's) order.
    ends: Vec<(usize, usize)>,
}

/// One column of [`OnlineFeatures`]: a feature's value and status for each entity row (none by
/// default).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FeatureColumn<'a> {
    pub values: &'a [Value],
    pub statuses: &'a [i32],
}

/// `results`' field number in `GetOnlineFeaturesResponse`.
const RESULTS: u32 = 2;
/// `values`' and `statuses`' field numbers in `FeatureVector`.
const VALUES: u32 = 1;
const STATUSES: u32 = 2;

impl OnlineFeatures {
    /// Columns in the answer: one per feature asked for.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Column `index`, in the request's order.
    pub fn column(&self, index: usize) -> Option<FeatureColumn<'_>> {
        let &(values_end, statuses_end) = self.ends.get(index)?;
        let (values_start, statuses_start) = match index.checked_sub(1) {
            Some(before) => self.ends[before],
            None => (0, 0),
        };
        Some(FeatureColumn {
            values: &self.values[values_start..values_end],
            statuses: &self.statuses[statuses_start..statuses_end],
        })
    }

    pub fn columns(&self) -> impl Iterator<Item = FeatureColumn<'_>> {
        (0..self.len()).filter_map(|index| self.column(index))
    }
}

impl FeatureColumn<'_> {
    /// Length of the column encoded as a `FeatureVector` message.
    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(VALUES, self.values)
            + int32::encoded_len_packed(STATUSES, self.statuses)
    }
}

/// Encodes as the `GetOnlineFeaturesResponse` it was read from, less what was skipped (names, event
/// times); decodes any `GetOnlineFeaturesResponse`.
impl Message for OnlineFeatures {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for column in self.columns() {
            encode_key(RESULTS, WireType::LengthDelimited, buf);
            encode_varint(column.encoded_len() as u64, buf);
            message::encode_repeated(VALUES, column.values, buf);
            int32::encode_packed(STATUSES, column.statuses, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != RESULTS {
            return skip_field(wire_type, tag, buf, ctx);
        }
        // One `FeatureVector`: its values and statuses go on the ends of the answer's arrays.
        check_wire_type(WireType::LengthDelimited, wire_type)?;
        let mut arrays = (&mut self.values, &mut self.statuses);
        encoding::merge_loop(&mut arrays, buf, ctx, |(values, statuses), buf, ctx| {
            let (tag, wire_type) = decode_key(buf)?;
            match tag {
                VALUES => message::merge_repeated(wire_type, values, buf, ctx),
                STATUSES => int32::merge_repeated(wire_type, statuses, buf, ctx),
                _ => skip_field(wire_type, tag, buf, ctx),
            }
        })?;
        self.ends.push((self.values.len(), self.statuses.len()));
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.columns()
            .map(|column| {
                let len = column.encoded_len();
                key_len(RESULTS) + encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn clear(&mut self) {
        self.values.clear();
        self.statuses.clear();
        self.ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use proto::feast::types::value::Val;
    use proto::features::v1::{FeatureVector, FieldStatus, GetOnlineFeaturesResponse};

    use super::*;

    fn value(v: f64) -> Value {
        Value {
            val: Some(Val::DoubleVal(v)),
        }
    }

    fn full_answer() -> GetOnlineFeaturesResponse {
        GetOnlineFeaturesResponse {
            feature_names: vec![
                "customer_profile:chargebacks_1y".into(),
                "zone_demand:orders_15m".into(),
                "zone_demand:orders_1h".into(),
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
                // A column with nothing in it keeps its place.
                FeatureVector::default(),
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
        }
    }

    #[test]
    fn reads_each_column_of_the_full_answer_in_order() {
        let full = full_answer();
        let read = OnlineFeatures::decode(full.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(read.len(), full.results.len());
        for (index, vector) in full.results.iter().enumerate() {
            let column = read.column(index).expect("a column per vector");
            assert_eq!(column.values, vector.values.as_slice(), "column {index}");
            assert_eq!(column.statuses, vector.statuses.as_slice(), "column {index}");
        }
        assert_eq!(read.column(full.results.len()), None);
    }

    #[test]
    fn encodes_as_the_answer_less_what_it_skips() {
        let full = full_answer();
        let read = OnlineFeatures::decode(full.encode_to_vec().as_slice()).expect("decodes");
        let bytes = read.encode_to_vec();
        assert_eq!(bytes.len(), read.encoded_len());
        let back = GetOnlineFeaturesResponse::decode(bytes.as_slice()).expect("decodes as the answer");
        assert!(back.feature_names.is_empty());
        assert_eq!(back.results.len(), full.results.len());
        for (got, sent) in back.results.iter().zip(&full.results) {
            assert_eq!(got.values, sent.values);
            assert_eq!(got.statuses, sent.statuses);
            assert!(got.event_timestamps.is_empty());
        }
    }

    #[test]
    fn reads_unpacked_statuses_and_refuses_a_cut_answer() {
        // `statuses` one by one (unpacked), as another encoder may send them.
        let mut vector = Vec::new();
        message::encode(VALUES, &value(1.0), &mut vector);
        int32::encode(STATUSES, &(FieldStatus::Present as i32), &mut vector);
        message::encode(VALUES, &value(2.0), &mut vector);
        int32::encode(STATUSES, &(FieldStatus::NullValue as i32), &mut vector);
        let mut answer = Vec::new();
        encode_key(RESULTS, WireType::LengthDelimited, &mut answer);
        encode_varint(vector.len() as u64, &mut answer);
        answer.extend_from_slice(&vector);
        let read = OnlineFeatures::decode(answer.as_slice()).expect("decodes");
        let column = read.column(0).expect("one column");
        assert_eq!(column.values, [value(1.0), value(2.0)]);
        assert_eq!(
            column.statuses,
            [FieldStatus::Present as i32, FieldStatus::NullValue as i32]
        );

        let cut = &answer[..answer.len() - 3];
        assert!(OnlineFeatures::decode(cut).is_err());
    }
}
