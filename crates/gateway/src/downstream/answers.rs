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

    /// The answer to a request whose entity rows were several requests' rows one after the other
    /// (`rows` of each, in order), as each request's own answer: every column cut at the same rows.
    /// Values are moved, not copied. Fails if a column does not hold one value and one status per row.
    pub fn into_parts(self, rows: &[usize]) -> Result<Vec<OnlineFeatures>, String> {
        let total: usize = rows.iter().sum();
        let mut start = (0, 0);
        for (index, &end) in self.ends.iter().enumerate() {
            let (values, statuses) = (end.0 - start.0, end.1 - start.1);
            if values != total || statuses != total {
                return Err(format!(
                    "column {index} holds {values} values and {statuses} statuses for {total} entity rows"
                ));
            }
            start = end;
        }
        let columns = self.ends.len();
        let mut parts: Vec<OnlineFeatures> = rows
            .iter()
            .map(|&n| OnlineFeatures {
                values: Vec::with_capacity(n * columns),
                statuses: Vec::with_capacity(n * columns),
                ends: Vec::with_capacity(columns),
            })
            .collect();
        let mut values = self.values.into_iter();
        let mut statuses = self.statuses.into_iter();
        for _ in 0..columns {
            for (part, &n) in parts.iter_mut().zip(rows) {
                part.values.extend(values.by_ref().take(n));
                part.statuses.extend(statuses.by_ref().take(n));
                part.ends.push((part.values.len(), part.statuses.len()));
            }
        }
        Ok(parts)
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

    /// An answer of `columns` columns over `rows` entity rows, the value of row r in column c being
    /// c * 100 + r, with a status of its own.
    fn grid(columns: usize, rows: usize) -> OnlineFeatures {
        let answer = GetOnlineFeaturesResponse {
            feature_names: Vec::new(),
            results: (0..columns)
                .map(|c| FeatureVector {
                    values: (0..rows).map(|r| value((c * 100 + r) as f64)).collect(),
                    statuses: (0..rows).map(|r| (c * 100 + r) as i32).collect(),
                    event_timestamps: Vec::new(),
                })
                .collect(),
        };
        OnlineFeatures::decode(answer.encode_to_vec().as_slice()).expect("decodes")
    }

    #[test]
    fn a_merged_answer_parts_as_each_request_alone_would_read() {
        let parts = grid(3, 6)
            .into_parts(&[1, 3, 2])
            .expect("every column holds 6 rows");
        let mut first_row = 0;
        for (part, rows) in parts.iter().zip([1, 3, 2]) {
            assert_eq!(part.len(), 3);
            for c in 0..3 {
                let column = part.column(c).expect("each column kept");
                let expected: Vec<usize> = (first_row..first_row + rows).map(|r| c * 100 + r).collect();
                let values: Vec<Value> = expected.iter().map(|&v| value(v as f64)).collect();
                let statuses: Vec<i32> = expected.iter().map(|&v| v as i32).collect();
                assert_eq!(
                    column.values,
                    values.as_slice(),
                    "column {c} from row {first_row}"
                );
                assert_eq!(
                    column.statuses,
                    statuses.as_slice(),
                    "column {c} from row {first_row}"
                );
            }
            first_row += rows;
        }
        // No columns: as many empty answers as requests.
        let empty = OnlineFeatures::default()
            .into_parts(&[2, 1])
            .expect("nothing to cut");
        assert_eq!(empty, vec![OnlineFeatures::default(), OnlineFeatures::default()]);
    }

    #[test]
    fn a_merged_answer_short_of_a_row_is_refused() {
        let error = grid(2, 5).into_parts(&[3, 3]).expect_err("5 rows for 6");
        assert_eq!(error, "column 0 holds 5 values and 5 statuses for 6 entity rows");
        // The empty column of the full answer cannot be cut either.
        let read = OnlineFeatures::decode(full_answer().encode_to_vec().as_slice()).expect("decodes");
        let error = read.into_parts(&[1, 1]).expect_err("column 1 is empty");
        assert!(error.starts_with("column 1 holds 0 values"), "{error}");
    }
}
