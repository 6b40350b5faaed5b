//! GGUF metadata: the typed key/value section.
//!
//! Arrays are stored as typed vectors (`Vec<u32>`, `Vec<String>`, ...) rather than a vector of
//! boxed values. That is what callers want (the token list is a `Vec<String>`), and it keeps memory
//! within a small constant factor of the file size, which matters when the file is hostile.

use std::collections::HashMap;
use std::fmt;

use super::error::GgufError;

/// A GGUF metadata value type (`gguf_type`), with its on-disk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type for an on-disk id, `None` if the id is not in the specification.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The on-disk id.
    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// The fewest bytes one value of this type occupies on disk; the reader uses it to reject
    /// element counts that the rest of the file could not possibly hold.
    pub fn min_encoded_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            // u64 length, possibly empty
            String => 8,
            // u32 element type + u64 count, possibly empty
            Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        };
        f.write_str(s)
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetadataArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous metadata array; arrays of arrays nest (each inner array has its own type).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetadataArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetadataValue {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetadataValue::U8(_) => ValueType::U8,
            MetadataValue::I8(_) => ValueType::I8,
            MetadataValue::U16(_) => ValueType::U16,
            MetadataValue::I16(_) => ValueType::I16,
            MetadataValue::U32(_) => ValueType::U32,
            MetadataValue::I32(_) => ValueType::I32,
            MetadataValue::F32(_) => ValueType::F32,
            MetadataValue::Bool(_) => ValueType::Bool,
            MetadataValue::String(_) => ValueType::String,
            MetadataValue::Array(_) => ValueType::Array,
            MetadataValue::U64(_) => ValueType::U64,
            MetadataValue::I64(_) => ValueType::I64,
            MetadataValue::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type as u64, `None` for negatives and non-integers. Converters are not
    /// consistent about integer widths (u32 vs u64 vs i32 for the same key), so readers should
    /// not be either.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// f32 or f64 as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<&MetadataArray> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl MetadataArray {
    /// The element type.
    pub fn element_type(&self) -> ValueType {
        match self {
            MetadataArray::U8(_) => ValueType::U8,
            MetadataArray::I8(_) => ValueType::I8,
            MetadataArray::U16(_) => ValueType::U16,
            MetadataArray::I16(_) => ValueType::I16,
            MetadataArray::U32(_) => ValueType::U32,
            MetadataArray::I32(_) => ValueType::I32,
            MetadataArray::F32(_) => ValueType::F32,
            MetadataArray::Bool(_) => ValueType::Bool,
            MetadataArray::String(_) => ValueType::String,
            MetadataArray::Array(_) => ValueType::Array,
            MetadataArray::U64(_) => ValueType::U64,
            MetadataArray::I64(_) => ValueType::I64,
            MetadataArray::F64(_) => ValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetadataArray::U8(v) => v.len(),
            MetadataArray::I8(v) => v.len(),
            MetadataArray::U16(v) => v.len(),
            MetadataArray::I16(v) => v.len(),
            MetadataArray::U32(v) => v.len(),
            MetadataArray::I32(v) => v.len(),
            MetadataArray::F32(v) => v.len(),
            MetadataArray::Bool(v) => v.len(),
            MetadataArray::String(v) => v.len(),
            MetadataArray::Array(v) => v.len(),
            MetadataArray::U64(v) => v.len(),
            MetadataArray::I64(v) => v.len(),
            MetadataArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The metadata section: keys in file order plus a by-name index.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Adds an entry; returns `false` (and changes nothing) if the key is already present.
    pub(crate) fn insert(&mut self, key: String, value: MetadataValue) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, v)| v)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    /// A non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "a non-negative integer",
            found: describe(v),
        })
    }

    /// A non-negative integer that must fit in `usize` (counts, sizes).
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get_u64(key)?;
        usize::try_from(v).map_err(|_| GgufError::WrongType {
            key: key.to_owned(),
            expected: "an integer that fits in usize",
            found: v.to_string(),
        })
    }

    /// An f32 or f64 (as f64).
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64()
            .ok_or_else(|| GgufError::wrong_type(key, "a float", v.value_type()))
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| GgufError::wrong_type(key, "a string", v.value_type()))
    }

    /// A boolean.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool()
            .ok_or_else(|| GgufError::wrong_type(key, "a bool", v.value_type()))
    }

    /// An array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&MetadataArray, GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| GgufError::wrong_type(key, "an array", v.value_type()))
    }

    /// An array of strings (the token list, the merges).
    pub fn get_string_array(&self, key: &str) -> Result<&[String], GgufError> {
        match self.get_array(key)? {
            MetadataArray::String(v) => Ok(v),
            other => Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "an array of strings",
                found: format!("an array of {}", other.element_type()),
            }),
        }
    }
}

/// A short description of a value for error messages: its type, and the value itself when small.
fn describe(v: &MetadataValue) -> String {
    match v {
        MetadataValue::String(_) | MetadataValue::Array(_) => v.value_type().to_string(),
        other => format!("{} {:?}", other.value_type(), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_accessor_accepts_every_width_but_not_negatives() {
        let mut m = Metadata::default();
        assert!(m.insert("a".into(), MetadataValue::U32(7)));
        assert!(m.insert("b".into(), MetadataValue::I64(-1)));
        assert!(m.insert("c".into(), MetadataValue::I16(9)));
        assert!(
            !m.insert("a".into(), MetadataValue::U8(1)),
            "duplicate key must be refused"
        );
        assert_eq!(m.get_u64("a").ok(), Some(7));
        assert_eq!(m.get_u64("c").ok(), Some(9));
        assert!(matches!(m.get_u64("b"), Err(GgufError::WrongType { .. })));
        assert!(matches!(
            m.get_u64("zzz"),
            Err(GgufError::MissingKey { .. })
        ));
        assert!(matches!(m.get_str("a"), Err(GgufError::WrongType { .. })));
    }

    #[test]
    fn value_type_ids_round_trip() {
        for id in 0..13 {
            let t = ValueType::from_id(id).map(ValueType::id);
            assert_eq!(t, Some(id));
        }
        assert_eq!(ValueType::from_id(13), None);
    }
}
