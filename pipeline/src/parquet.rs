//! Parquet through polars: atomic writes and reads with errors that name the file.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::{DataFrame, ParquetReader, ParquetWriter, SerReader, StatisticsOptions};

use crate::atomic::PendingFile;

/// Writes a data frame to `dest` atomically (zstd-compressed Parquet, statistics on).
pub fn write_parquet(df: &mut DataFrame, dest: &Path) -> Result<()> {
    let mut pending = PendingFile::create(dest)?;
    ParquetWriter::new(pending.file())
        .with_statistics(StatisticsOptions::default())
        .finish(df)
        .with_context(|| format!("cannot write Parquet {}", dest.display()))?;
    pending.commit()
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

/// A string column as owned optional values, or an error naming the file and column.
pub fn string_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let column = df
        .column(name)
        .with_context(|| format!("{}: no column {name:?}", path.display()))?;
    let values = column
        .str()
        .with_context(|| format!("{}: column {name:?} is {}, expected strings", path.display(), column.dtype()))?;
    Ok((0..values.len()).map(|i| values.get(i).map(str::to_owned)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::df;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut df = df!("a" => ["x", "y"], "b" => [1.5f64, 2.0]).unwrap();
        write_parquet(&mut df, &path).unwrap();
        let back = read_parquet(&path).unwrap();
        assert!(back.equals(&df));
        assert_eq!(string_column(&back, "a", &path).unwrap(), vec![Some("x".into()), Some("y".into())]);
        let err = string_column(&back, "b", &path).unwrap_err().to_string();
        assert!(err.contains("column \"b\" is f64, expected strings"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"not parquet at all").unwrap();
        let err = format!("{:#}", read_parquet(&path).unwrap_err());
        assert!(err.contains("bad.parquet: not a readable Parquet file"), "{err}");
    }
}
