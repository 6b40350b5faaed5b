//! selfinstruct's pipeline: the seed pool, Parquet I/O and the CLI commands.

pub mod atomic;
pub mod cli;
pub mod commands;
pub mod dedup;
pub mod generator;
pub mod input;
pub mod iterate;
pub mod model_source;
pub mod parquet;
pub mod parse;
pub mod prompts;
pub mod records;
pub mod round;
pub mod seeds;
pub mod sft;
pub mod table;
