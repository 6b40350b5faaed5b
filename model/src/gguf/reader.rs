//! Parsing the GGUF container: header, metadata, tensor directory, data section.
//!
//! Layout (GGUF v2/v3, little-endian; v1's 32-bit counts are not supported):
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//! kv_count x    (string key | u32 value_type | value)
//! tensor_count x (string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset)
//! padding to general.alignment (default 32)
//! tensor data; each tensor at data_start + offset, offset a multiple of the alignment
//! string = u64 length | bytes (UTF-8, no terminator)
//! array  = u32 element type | u64 count | elements (arrays may nest)
//! ```
//!
//! The file is untrusted. Every read is bounds-checked against the bytes that remain, and every
//! count is checked against what the rest of the file could hold *before* anything is allocated,
//! so a header claiming 2^60 tensors or a 2^63-byte string is an error naming the byte offset,
//! never an allocation failure or a panic.
//!
//! Tensors must not overlap: otherwise a small file could declare thousands of tensors sharing
//! one region, and a loader that dequantises every tensor would allocate far more than the file
//! holds. With overlap excluded, all tensors together are at most the file's size.
//!
//! What is deliberately *not* checked: that tensors are packed in directory order without gaps
//! (llama.cpp's own `gguf_init` requires that; gguf-py and llama.cpp's model loader do not), and
//! that the padding after the last tensor is present (a file cut inside that padding still holds
//! every tensor byte, so it loads, as it does in llama.cpp's loader).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant;
use super::error::GgufError;
use super::metadata::{Metadata, MetadataArray, MetadataValue, ValueType};
use super::types::GgmlType;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays of arrays accepted. The format allows any depth; this bounds the
/// reader's recursion so a file of nested array headers cannot overflow the stack.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Smallest possible tensor-directory entry: empty name (u64 length), n_dims = 0 (u32),
/// type (u32), offset (u64).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Smallest possible metadata entry: empty key (u64 length), type (u32), one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The GGUF tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the innermost (contiguous) one, i.e. the *reverse*
    /// of the PyTorch/safetensors shape. A `[out, in]` linear weight has `dims == [in, out]`.
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section, as stored in the file.
    pub relative_offset: u64,
    /// Absolute byte offset of the data in the file.
    pub data_start: u64,
    /// Number of bytes of data.
    pub n_bytes: u64,
    /// Number of elements (product of `dims`).
    pub n_elements: u64,
    /// Number of rows: the product of every dimension but the innermost.
    pub n_rows: u64,
    /// Bytes per row (`dims[0]` elements) in the stored type.
    pub row_bytes: u64,
    /// Absolute byte offset of this directory entry (for error messages).
    pub info_offset: u64,
}

impl TensorInfo {
    /// The shape in PyTorch/safetensors order (outermost first), e.g. `[out, in]` for a linear
    /// weight. Dimensions fit in `usize` because the data was bounds-checked against the file.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Elements per row (`dims[0]`; 1 for a zero-dimensional tensor).
    pub fn row_len(&self) -> usize {
        self.dims.first().map_or(1, |&d| d as usize)
    }
}

/// The parsed header, metadata and tensor directory of a GGUF file, independent of where the
/// bytes live (a memory map, or a buffer in tests and fuzzing).
#[derive(Debug, Clone)]
pub struct GgufContent {
    /// Format version (2 or 3).
    pub version: u32,
    /// The key/value metadata.
    pub metadata: Metadata,
    /// The tensor directory, in file order.
    pub tensors: Vec<TensorInfo>,
    /// The alignment in force (`general.alignment` or 32).
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Length of the bytes the content was parsed from.
    pub file_len: u64,
    tensor_index: HashMap<String, usize>,
}

impl GgufContent {
    /// Parses a whole GGUF file held in `bytes`, checking that every tensor's data lies inside it.
    pub fn parse(bytes: &[u8]) -> Result<GgufContent, GgufError> {
        let mut c = Cursor {
            data: bytes,
            pos: 0,
        };

        let magic = c.take(4, "magic")?;
        if magic != GGUF_MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(GgufError::BadMagic { found });
        }
        let version_offset = c.offset();
        let version = c.u32("version")?;
        if (2..=3).contains(&version.swap_bytes()) {
            return Err(GgufError::BigEndian {
                offset: version_offset,
            });
        }
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                offset: version_offset,
                version,
            });
        }
        let tensor_count = c.count("tensor count", MIN_TENSOR_INFO_BYTES)?;
        let kv_count = c.count("metadata entry count", MIN_KV_BYTES)?;

        let mut metadata = Metadata::default();
        let mut alignment_value_offset = None;
        for _ in 0..kv_count {
            let key_offset = c.offset();
            let key = c.string("metadata key")?;
            let type_offset = c.offset();
            let type_id = c.u32("metadata value type")?;
            let ty = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType {
                offset: type_offset,
                type_id,
            })?;
            let value_offset = c.offset();
            let value = read_value(&mut c, ty)?;
            if key == "general.alignment" {
                alignment_value_offset = Some(value_offset);
            }
            if !metadata.insert(key.clone(), value) {
                return Err(GgufError::DuplicateKey {
                    offset: key_offset,
                    key,
                });
            }
        }
        let alignment = match (metadata.get("general.alignment"), alignment_value_offset) {
            (Some(value), Some(offset)) => check_alignment(value, offset)?,
            _ => DEFAULT_ALIGNMENT,
        };

        let mut tensors = Vec::with_capacity(tensor_count);
        let mut tensor_index = HashMap::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let info = read_tensor_info(&mut c)?;
            if tensor_index.contains_key(&info.name) {
                return Err(GgufError::DuplicateTensor {
                    offset: info.info_offset,
                    name: info.name,
                });
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        let end_of_directory = c.offset();
        let file_len = bytes.len() as u64;
        // `alignment` is a power of two no larger than u32::MAX and `end_of_directory` is at most
        // the file length, so this cannot overflow; checked anyway because it costs nothing.
        let data_offset =
            end_of_directory
                .checked_next_multiple_of(alignment)
                .ok_or(GgufError::Truncated {
                    offset: end_of_directory,
                    what: "padding before the data section",
                    needed: alignment,
                    available: 0,
                })?;
        for t in &mut tensors {
            place_tensor(t, data_offset, alignment, file_len)?;
        }
        check_no_overlap(&tensors)?;

        Ok(GgufContent {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_len,
            tensor_index,
        })
    }

    /// The directory entry of the tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The data of `info` within `bytes` (the same bytes the content was parsed from). Checked
    /// again so that passing a different buffer is an error, not a panic.
    pub fn tensor_bytes<'a>(
        &self,
        bytes: &'a [u8],
        info: &TensorInfo,
    ) -> Result<&'a [u8], GgufError> {
        let end = info.data_start.checked_add(info.n_bytes);
        end.and_then(|end| bytes.get(info.data_start as usize..end as usize))
            .ok_or_else(|| GgufError::TensorOutOfBounds {
                offset: info.info_offset,
                name: info.name.clone(),
                start: info.data_start,
                end: end.unwrap_or(u64::MAX),
                file_len: bytes.len() as u64,
            })
    }
}

/// A GGUF file opened for reading: the parsed directory plus a read-only memory map of the
/// file, from which tensor data is borrowed without copying.
///
/// Like every memory-mapped reader (llama.cpp, safetensors), this assumes the file is not
/// truncated by another process while mapped; if it is, the OS raises SIGBUS on access.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    content: GgufContent,
}

impl GgufFile {
    /// Opens, maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only and private to this value; the bytes are only ever
        // read through bounds-checked slices. The one hazard, another process shrinking the
        // file while it is mapped, is documented on the type.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let content = GgufContent::parse(&map)?;
        Ok(GgufFile { path, map, content })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header, metadata and directory.
    pub fn content(&self) -> &GgufContent {
        &self.content
    }

    /// The key/value metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.content.metadata
    }

    /// The tensor directory, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.content.tensors
    }

    /// The whole mapped file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The tensor `name` with its data, borrowed from the map.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, GgufError> {
        let info = self
            .content
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                name: name.to_owned(),
            })?;
        let data = self.content.tensor_bytes(&self.map, info)?;
        Ok(TensorView { info, data })
    }
}

/// A tensor's directory entry and its raw (possibly quantised) bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The directory entry.
    pub info: &'a TensorInfo,
    /// The stored bytes, `info.n_bytes` long.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Dequantises the whole tensor to f32, in storage order (row-major over [`TensorInfo::shape`]).
    pub fn to_f32(&self) -> Result<Vec<f32>, GgufError> {
        dequant::dequantize(
            self.info.ggml_type,
            self.data,
            self.info.n_elements as usize,
        )
    }

    /// The stored bytes of row `i` (a row is `dims[0]` elements), for row-wise (e.g. quantised
    /// matmul) access; `None` past the last row.
    pub fn row(&self, i: usize) -> Option<&[u8]> {
        if i as u64 >= self.info.n_rows {
            return None;
        }
        let rb = self.info.row_bytes as usize;
        let start = i.checked_mul(rb)?;
        self.data.get(start..start.checked_add(rb)?)
    }
}

/// Reads a tensor-directory entry and computes its element and byte counts.
fn read_tensor_info(c: &mut Cursor<'_>) -> Result<TensorInfo, GgufError> {
    let info_offset = c.offset();
    let name = c.string("tensor name")?;
    let n_dims = c.u32("tensor dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            offset: info_offset,
            name,
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64("tensor dimension")?);
    }
    let type_offset = c.offset();
    let type_id = c.u32("tensor type")?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
        offset: type_offset,
        name: name.clone(),
        type_id,
    })?;
    let relative_offset = c.u64("tensor data offset")?;

    let overflow = || GgufError::ShapeOverflow {
        offset: info_offset,
        name: name.clone(),
        dims: dims.clone(),
    };
    // ggml stores dimensions as int64_t, so anything past i64::MAX is as good as an overflow.
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(overflow)?;
    let ne0 = dims.first().copied().unwrap_or(1);
    let n_rows = dims
        .iter()
        .skip(1)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let block_size = ggml_type.block_size() as u64;
    if ne0 % block_size != 0 {
        return Err(GgufError::RowNotBlockAligned {
            offset: info_offset,
            name,
            ty: ggml_type,
            ne0,
            block_size,
        });
    }
    let row_bytes = ggml_type.row_bytes(ne0).ok_or_else(overflow)?;
    let n_bytes = row_bytes.checked_mul(n_rows).ok_or_else(overflow)?;

    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        relative_offset,
        data_start: 0,
        n_bytes,
        n_elements,
        n_rows,
        row_bytes,
        info_offset,
    })
}

/// Resolves a tensor's absolute data range and checks it against alignment and file size.
fn place_tensor(
    t: &mut TensorInfo,
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    if !t.relative_offset.is_multiple_of(alignment) {
        return Err(GgufError::MisalignedTensor {
            offset: t.info_offset,
            name: t.name.clone(),
            data_offset: t.relative_offset,
            alignment,
        });
    }
    let start = data_offset.checked_add(t.relative_offset);
    let end = start.and_then(|s| s.checked_add(t.n_bytes));
    match (start, end) {
        (Some(start), Some(end)) if end <= file_len => {
            t.data_start = start;
            Ok(())
        }
        _ => Err(GgufError::TensorOutOfBounds {
            offset: t.info_offset,
            name: t.name.clone(),
            start: start.unwrap_or(u64::MAX),
            end: end.unwrap_or(u64::MAX),
            file_len,
        }),
    }
}

/// Rejects tensors whose data ranges overlap (empty tensors overlap nothing).
fn check_no_overlap(tensors: &[TensorInfo]) -> Result<(), GgufError> {
    let mut by_start: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_start.sort_by_key(|t| t.data_start);
    for pair in by_start.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // both ranges were checked to end inside the file, so the addition cannot overflow
        if b.data_start < a.data_start + a.n_bytes {
            return Err(GgufError::TensorOverlap {
                offset: b.info_offset,
                name: b.name.clone(),
                other: a.name.clone(),
            });
        }
    }
    Ok(())
}

/// `general.alignment` must be a u32 power of two (as llama.cpp requires).
fn check_alignment(value: &MetadataValue, offset: u64) -> Result<u64, GgufError> {
    match *value {
        MetadataValue::U32(a) if a.is_power_of_two() => Ok(a.into()),
        MetadataValue::U32(a) => Err(GgufError::BadAlignment {
            offset,
            reason: format!("{a} is not a non-zero power of two"),
        }),
        ref other => Err(GgufError::BadAlignment {
            offset,
            reason: format!("stored as {}, expected u32", other.value_type()),
        }),
    }
}

/// Reads one value of type `ty` (the type id has already been read).
fn read_value(c: &mut Cursor<'_>, ty: ValueType) -> Result<MetadataValue, GgufError> {
    Ok(match ty {
        ValueType::U8 => MetadataValue::U8(c.u8("u8 value")?),
        ValueType::I8 => MetadataValue::I8(c.u8("i8 value")? as i8),
        ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(c.array("u16 value")?)),
        ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(c.array("i16 value")?)),
        ValueType::U32 => MetadataValue::U32(c.u32("u32 value")?),
        ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(c.array("i32 value")?)),
        ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(c.array("f32 value")?)),
        ValueType::Bool => MetadataValue::Bool(c.bool()?),
        ValueType::String => MetadataValue::String(c.string("string value")?),
        ValueType::Array => MetadataValue::Array(read_array(c, 1)?),
        ValueType::U64 => MetadataValue::U64(c.u64("u64 value")?),
        ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(c.array("i64 value")?)),
        ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(c.array("f64 value")?)),
    })
}

/// Reads an array header and its elements; `depth` is 1 for a top-level array.
fn read_array(c: &mut Cursor<'_>, depth: usize) -> Result<MetadataArray, GgufError> {
    let type_offset = c.offset();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            offset: type_offset,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let type_id = c.u32("array element type")?;
    let ty = ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType {
        offset: type_offset,
        type_id,
    })?;
    let n = c.count("array length", ty.min_encoded_size())?;

    fn fixed<const N: usize, T>(
        c: &mut Cursor<'_>,
        n: usize,
        what: &'static str,
        f: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        // `n * N` cannot overflow: `count` checked `n * N <= remaining`.
        let bytes = c.take((n * N) as u64, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|ch| {
                let mut a = [0u8; N];
                a.copy_from_slice(ch);
                f(a)
            })
            .collect())
    }

    Ok(match ty {
        ValueType::U8 => MetadataArray::U8(c.take(n as u64, "u8 array")?.to_vec()),
        ValueType::I8 => MetadataArray::I8(
            c.take(n as u64, "i8 array")?
                .iter()
                .map(|&b| b as i8)
                .collect(),
        ),
        ValueType::U16 => MetadataArray::U16(fixed(c, n, "u16 array", u16::from_le_bytes)?),
        ValueType::I16 => MetadataArray::I16(fixed(c, n, "i16 array", i16::from_le_bytes)?),
        ValueType::U32 => MetadataArray::U32(fixed(c, n, "u32 array", u32::from_le_bytes)?),
        ValueType::I32 => MetadataArray::I32(fixed(c, n, "i32 array", i32::from_le_bytes)?),
        ValueType::F32 => MetadataArray::F32(fixed(c, n, "f32 array", f32::from_le_bytes)?),
        ValueType::U64 => MetadataArray::U64(fixed(c, n, "u64 array", u64::from_le_bytes)?),
        ValueType::I64 => MetadataArray::I64(fixed(c, n, "i64 array", i64::from_le_bytes)?),
        ValueType::F64 => MetadataArray::F64(fixed(c, n, "f64 array", f64::from_le_bytes)?),
        ValueType::Bool => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.bool()?);
            }
            MetadataArray::Bool(v)
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.string("string array element")?);
            }
            MetadataArray::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, depth + 1)?);
            }
            MetadataArray::Array(v)
        }
    })
}

/// A bounds-checked little-endian reader over the file bytes.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if n > available {
            return Err(GgufError::Truncated {
                offset: self.offset(),
                what,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        // n <= remaining, so it fits in usize and start + n <= len.
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn bool(&mut self) -> Result<bool, GgufError> {
        let offset = self.offset();
        match self.u8("bool value")? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool { offset, value }),
        }
    }

    /// Reads a u64 count and checks that `count` items of at least `min_item_bytes` each could
    /// fit in the rest of the file; the result is therefore safe to pre-allocate for.
    fn count(&mut self, what: &'static str, min_item_bytes: u64) -> Result<usize, GgufError> {
        let offset = self.offset();
        let count = self.u64(what)?;
        let remaining = self.remaining();
        match count.checked_mul(min_item_bytes) {
            Some(total) if total <= remaining => Ok(count as usize),
            _ => Err(GgufError::CountTooLarge {
                offset,
                what,
                count,
                remaining,
            }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let offset = self.offset();
        let len = self.count(what, 1)?;
        let bytes = self.take(len as u64, what)?;
        let s = std::str::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 { offset, what })?;
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    #[test]
    fn empty_file_parses() {
        let c = GgufContent::parse(&header(0, 0)).expect("minimal file");
        assert_eq!(c.version, 3);
        assert!(c.metadata.is_empty() && c.tensors.is_empty());
        assert_eq!(c.alignment, DEFAULT_ALIGNMENT);
    }

    #[test]
    fn huge_tensor_count_is_rejected_before_allocating() {
        let err = GgufContent::parse(&header(u64::MAX / 2, 0)).expect_err("must be rejected");
        assert!(
            matches!(err, GgufError::CountTooLarge { offset: 8, .. }),
            "{err}"
        );
    }

    #[test]
    fn version_1_is_rejected() {
        let mut b = header(0, 0);
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        let err = GgufContent::parse(&b).expect_err("must be rejected");
        assert!(
            matches!(
                err,
                GgufError::UnsupportedVersion {
                    offset: 4,
                    version: 1
                }
            ),
            "{err}"
        );
    }
}
