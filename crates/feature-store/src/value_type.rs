//! Feast's value types, as the registry names them and as they tag serialized entity keys.

use std::fmt;

use proto::feast::types::value::Val;
use serde::Deserialize;

/// Feast's value types, spelled as in Feast's `ValueType` enum (`"INT64"`, `"DOUBLE_LIST"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueType {
    Bytes,
    String,
    Int32,
    Int64,
    Double,
    Float,
    Bool,
    UnixTimestamp,
    BytesList,
    StringList,
    Int32List,
    Int64List,
    DoubleList,
    FloatList,
    BoolList,
    UnixTimestampList,
}

impl ValueType {
    /// Feast's numeric tag (`feast.types.ValueType.Enum`), as written into serialized entity keys.
    pub fn tag(self) -> u32 {
        match self {
            Self::Bytes => 1,
            Self::String => 2,
            Self::Int32 => 3,
            Self::Int64 => 4,
            Self::Double => 5,
            Self::Float => 6,
            Self::Bool => 7,
            Self::UnixTimestamp => 8,
            Self::BytesList => 11,
            Self::StringList => 12,
            Self::Int32List => 13,
            Self::Int64List => 14,
            Self::DoubleList => 15,
            Self::FloatList => 16,
            Self::BoolList => 17,
            Self::UnixTimestampList => 18,
        }
    }

    /// Whether a stored value has this type (a null matches every type).
    pub fn matches(self, value: &Val) -> bool {
        matches!(
            (self, value),
            (_, Val::NullVal(_))
                | (Self::Bytes, Val::BytesVal(_))
                | (Self::String, Val::StringVal(_))
                | (Self::Int32, Val::Int32Val(_))
                | (Self::Int64, Val::Int64Val(_))
                | (Self::Double, Val::DoubleVal(_))
                | (Self::Float, Val::FloatVal(_))
                | (Self::Bool, Val::BoolVal(_))
                | (Self::UnixTimestamp, Val::UnixTimestampVal(_))
                | (Self::BytesList, Val::BytesListVal(_))
                | (Self::StringList, Val::StringListVal(_))
                | (Self::Int32List, Val::Int32ListVal(_))
                | (Self::Int64List, Val::Int64ListVal(_))
                | (Self::DoubleList, Val::DoubleListVal(_))
                | (Self::FloatList, Val::FloatListVal(_))
                | (Self::BoolList, Val::BoolListVal(_))
                | (Self::UnixTimestampList, Val::UnixTimestampListVal(_))
        )
    }

    /// Whether Feast can serialize an entity key value of this type.
    pub fn is_entity_key_type(self) -> bool {
        matches!(
            self,
            Self::String | Self::Bytes | Self::Int32 | Self::Int64 | Self::UnixTimestamp
        )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Bytes => "BYTES",
            Self::String => "STRING",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Double => "DOUBLE",
            Self::Float => "FLOAT",
            Self::Bool => "BOOL",
            Self::UnixTimestamp => "UNIX_TIMESTAMP",
            Self::BytesList => "BYTES_LIST",
            Self::StringList => "STRING_LIST",
            Self::Int32List => "INT32_LIST",
            Self::Int64List => "INT64_LIST",
            Self::DoubleList => "DOUBLE_LIST",
            Self::FloatList => "FLOAT_LIST",
            Self::BoolList => "BOOL_LIST",
            Self::UnixTimestampList => "UNIX_TIMESTAMP_LIST",
        };
        f.write_str(name)
    }
}
