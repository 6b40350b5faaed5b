//! The one error type of the GGUF reader.
//!
//! A GGUF file is untrusted input: every way it can be malformed has its own variant, and the
//! variants that come from the bytes name the byte offset where the reader found the problem, so a
//! user (or a fuzzer) can open the file in a hex editor at that spot.

use std::path::PathBuf;

use super::metadata::ValueType;
use super::types::GgmlType;

/// Everything that can go wrong reading a GGUF file, dequantising its tensors or mapping its
/// metadata onto a model configuration.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, read or memory-mapped.
    #[error("cannot read GGUF file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file ends before a field that the format requires.
    #[error(
        "truncated GGUF data at byte {offset}: {what} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        available: u64,
    },

    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic at byte 0 is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },

    /// Only versions 2 and 3 (64-bit counts) are read; version 1 used 32-bit counts and is obsolete.
    #[error("unsupported GGUF version {version} at byte {offset} (supported: 2, 3)")]
    UnsupportedVersion { offset: u64, version: u32 },

    /// A big-endian GGUF file (the version field reads byte-swapped); only little-endian files,
    /// which is what every converter writes by default, are supported.
    #[error("big-endian GGUF file (version field at byte {offset}); only little-endian files are supported")]
    BigEndian { offset: u64 },

    /// A count or length that cannot fit in what is left of the file (the guard against huge
    /// allocations driven by a hostile header).
    #[error("{what} at byte {offset} is {count}, more than the {remaining} bytes left in the file can hold")]
    CountTooLarge {
        offset: u64,
        what: &'static str,
        count: u64,
        remaining: u64,
    },

    /// A metadata value type id outside the GGUF specification.
    #[error("unknown metadata value type {type_id} at byte {offset}")]
    UnknownValueType { offset: u64, type_id: u32 },

    /// Arrays of arrays nested deeper than the reader accepts (bounds recursion depth).
    #[error("metadata arrays nested deeper than {max} at byte {offset}")]
    NestingTooDeep { offset: u64, max: usize },

    /// A GGUF string that is not UTF-8 (the specification requires UTF-8).
    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: u64, what: &'static str },

    /// A boolean byte other than 0 or 1.
    #[error("boolean at byte {offset} has value {value}, expected 0 or 1")]
    InvalidBool { offset: u64, value: u8 },

    /// The same metadata key appears twice; which one wins would be arbitrary.
    #[error("duplicate metadata key {key:?} at byte {offset}")]
    DuplicateKey { offset: u64, key: String },

    /// `general.alignment` is not a non-zero power of two stored as u32.
    #[error("invalid general.alignment at byte {offset}: {reason}")]
    BadAlignment { offset: u64, reason: String },

    /// The same tensor name appears twice.
    #[error("duplicate tensor name {name:?} at byte {offset}")]
    DuplicateTensor { offset: u64, name: String },

    /// More dimensions than ggml's maximum of 4.
    #[error("tensor {name:?} at byte {offset} has {n_dims} dimensions (ggml allows at most 4)")]
    TooManyDims {
        offset: u64,
        name: String,
        n_dims: u32,
    },

    /// A ggml tensor type id this reader does not know (so it cannot size the tensor).
    #[error("tensor {name:?} at byte {offset} has unknown ggml type {type_id}")]
    UnknownTensorType {
        offset: u64,
        name: String,
        type_id: u32,
    },

    /// The product of the dimensions (or the byte size) overflows.
    #[error("tensor {name:?} at byte {offset}: shape {dims:?} overflows")]
    ShapeOverflow {
        offset: u64,
        name: String,
        dims: Vec<u64>,
    },

    /// The first dimension is not a multiple of the type's block size, so rows cannot be stored.
    #[error("tensor {name:?} at byte {offset}: first dimension {ne0} is not a multiple of the {ty} block size {block_size}")]
    RowNotBlockAligned {
        offset: u64,
        name: String,
        ty: GgmlType,
        ne0: u64,
        block_size: u64,
    },

    /// A tensor data offset that is not a multiple of the file's alignment.
    #[error("tensor {name:?} (info at byte {offset}): data offset {data_offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        offset: u64,
        name: String,
        data_offset: u64,
        alignment: u64,
    },

    /// Tensor data that does not lie inside the file.
    #[error("tensor {name:?} (info at byte {offset}): data bytes {start}..{end} lie outside the file of {file_len} bytes")]
    TensorOutOfBounds {
        offset: u64,
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    /// Two tensors share data bytes.
    #[error("tensor {name:?} (info at byte {offset}): data overlaps tensor {other:?}")]
    TensorOverlap {
        offset: u64,
        name: String,
        other: String,
    },

    /// A metadata key that a caller needs is absent.
    #[error("GGUF metadata key {key:?} is missing")]
    MissingKey { key: String },

    /// A metadata key has a type (or value) the caller cannot use.
    #[error("GGUF metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    /// A tensor a caller asked for is absent.
    #[error("GGUF tensor {name:?} is missing")]
    MissingTensor { name: String },

    /// Dequantisation of this ggml type is not implemented.
    #[error("dequantisation of {0} is not supported")]
    UnsupportedDequant(GgmlType),

    /// A buffer passed to a dequantisation routine has the wrong size.
    #[error("{ty} data of {bytes} bytes does not hold {elements} elements")]
    SizeMismatch {
        ty: GgmlType,
        bytes: usize,
        elements: usize,
    },

    /// `general.architecture` names an architecture the model does not implement.
    #[error("unsupported GGUF architecture {0:?} (supported: qwen2, qwen3, llama)")]
    UnsupportedArchitecture(String),

    /// The metadata is well-formed but describes something the model cannot be built from.
    #[error("invalid GGUF model description: {0}")]
    InvalidModel(String),

    /// A tensor name that does not belong to the supported architectures.
    #[error("unexpected GGUF tensor {name:?} for architecture {arch}")]
    UnexpectedTensor { name: String, arch: String },
}

impl GgufError {
    pub(crate) fn wrong_type(key: &str, expected: &'static str, found: ValueType) -> Self {
        GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: found.to_string(),
        }
    }
}
