//! selfinstruct's pipeline: the seed pool, Parquet I/O and the CLI commands.
