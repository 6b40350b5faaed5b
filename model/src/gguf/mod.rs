//! GGUF checkpoints (llama.cpp's file format): reading, dequantising, and mapping onto the
//! HF-named model configuration and parameters.
//!
//! - [`reader`]: header, metadata, tensor directory; tensor data borrowed from a memory map.
//!   Every byte of the file is untrusted and every failure is a [`GgufError`] naming the offset.
//! - [`dequant`]: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K..Q6_K to f32, bit-identical
//!   to ggml's reference routines (checked against the `gguf` Python package in
//!   `model/tests/gguf_fixtures.rs`, fixtures from `tests/fixtures/gguf/make_fixtures.py`).
//! - [`arch`]: `qwen2`/`qwen3`/`llama` hyper-parameters as HF `config.json` fields, GGUF to HF
//!   tensor names, and the inverse of llama.cpp's q/k row permutation for `llama` files.
//!
//! ```no_run
//! # fn main() -> Result<(), model::gguf::GgufError> {
//! use model::gguf::{GgufFile, GgufModelConfig};
//! let file = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let config = GgufModelConfig::from_gguf(file.content())?;
//! for info in file.tensors() {
//!     // HF name, HF shape, f32 values (q/k rows un-permuted for llama)
//!     let tensor = config.load_tensor(&file, &info.name)?;
//! }
//! # Ok(()) }
//! ```

pub mod arch;
pub mod dequant;
mod error;
pub mod metadata;
pub mod reader;
pub mod types;

pub use arch::{
    permute_qk_rows, unpermute_qk_rows, Architecture, GgufModelConfig, HfTensor, RopeScaling,
    RopeScalingKind, TensorMapping,
};
pub use dequant::{can_dequantize, dequantize, dequantize_into, q8_0_block};
pub use error::GgufError;
pub use metadata::{Metadata, MetadataArray, MetadataValue, ValueType};
pub use reader::{GgufContent, GgufFile, TensorInfo, TensorView, DEFAULT_ALIGNMENT, GGUF_MAGIC};
pub use types::{GgmlType, QK_K};
