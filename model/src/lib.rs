//! Qwen-architecture language model in burn (see ../shared/DESIGN.md, "Model").
//!
//! Not built yet: this crate is a workspace member so the layout is in place; the model issue fills it.

pub mod chat_template;
pub mod gguf;
pub mod tokenizer;
