//! Qwen-architecture language model in burn (see ../shared/DESIGN.md, "Model").
//!
//! Read bottom-up: [`config`] -> [`norm`], [`rope`], [`mlp`], [`attention`] -> [`layer`] ->
//! [`model`] (whose module doc lists every architecture feature and the test that pins it);
//! [`weights`] and [`load`] read Hugging Face checkpoints, [`load_gguf`] GGUF files through the
//! same builder, and [`checkpoint::load_any`] either, with tokenizer and EOS ids; [`cache`],
//! [`generate`] and [`engine`] decode; [`sft`] fine-tunes (with [`lora`] adapters or every
//! weight) and [`export`] writes a model back out as a Hugging Face checkpoint.

pub mod attention;
pub mod batch;
pub mod cache;
pub mod chat_template;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod device;
pub mod engine;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod layer;
pub mod linear;
pub mod load;
pub mod load_gguf;
pub mod lora;
pub mod mlp;
pub mod model;
pub mod norm;
pub mod rope;
pub mod sampler;
pub mod sft;
pub mod tokenizer;
pub mod weights;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod testutil;

pub use cache::KvCache;
pub use checkpoint::{load_any, LoadedModel, ModelIdentity};
pub use config::{Config, ConfigError};
pub use export::{export_hf, ExportDtype, ExportError, ExportOptions, ExportSummary};
pub use load::load_checkpoint;
pub use load_gguf::load_gguf;
pub use model::{ForwardError, Model};
pub use weights::{LoadError, TensorSource};
