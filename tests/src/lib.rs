//! Helpers for the end-to-end tests in `tests/tests/`: find the built `selfinstruct` binary and
//! run it in a temporary folder.
//!
//! `cargo test --workspace` builds the binary before any test runs (the `pipeline` package has
//! integration tests, so cargo builds its binary); these helpers find it beside the test executable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `selfinstruct` binary of the current build profile.
pub fn selfinstruct_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/selfinstruct
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join(format!("selfinstruct{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace` (or `cargo build -p pipeline`) first",
        bin.display()
    );
    bin
}

/// Runs the binary with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(selfinstruct_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("SELFINSTRUCT_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run selfinstruct: {e}"))
}

/// Root of the repository (for committed fixtures and seeds).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// stdout and stderr of a finished command as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a Parquet file written by the tool.
pub fn read_parquet(path: &Path) -> polars::prelude::DataFrame {
    use polars::prelude::{ParquetReader, SerReader};
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    ParquetReader::new(file)
        .finish()
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A string column as owned optional values.
pub fn strings(df: &polars::prelude::DataFrame, name: &str) -> Vec<Option<String>> {
    let col = df.column(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = col.str().unwrap_or_else(|e| panic!("{name}: {e}"));
    (0..values.len())
        .map(|i| values.get(i).map(str::to_owned))
        .collect()
}

/// A float column as optional values.
pub fn floats(df: &polars::prelude::DataFrame, name: &str) -> Vec<Option<f64>> {
    let col = df.column(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = col.f64().unwrap_or_else(|e| panic!("{name}: {e}"));
    (0..values.len()).map(|i| values.get(i)).collect()
}
