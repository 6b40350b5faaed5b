//! The GGUF module of `model`, compiled on its own for fuzzing (see Cargo.toml).

#[path = "../../src/gguf/mod.rs"]
pub mod gguf;
