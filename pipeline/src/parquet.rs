//! Parquet through polars: atomic writes and reads with errors that name the file.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::{
    Column, CompatLevel, DataFrame, DataType, KeyValueMetadata, NamedFrom, ParquetReader,
    ParquetWriter, PlSmallStr, SchemaExt, SerReader, Series, StatisticsOptions,
};

use crate::atomic::PendingFile;

/// Writes a data frame to `dest` atomically (zstd-compressed Parquet, statistics on).
pub fn write_parquet(df: &mut DataFrame, dest: &Path) -> Result<()> {
    let mut pending = PendingFile::create(dest)?;
    write_frame(pending.file(), df)
        .with_context(|| format!("cannot write Parquet {}", dest.display()))?;
    pending.commit()
}

/// Writes a data frame as Parquet to an open file.
///
/// polars records its newest Arrow types (`string_view`) in the file's Arrow schema; pandas
/// cannot convert lists of those, and older readers do not know them. The Parquet data is the
/// same either way (UTF-8 byte arrays), so we record the schema at the oldest compatibility level
/// (`large_string`), which pandas, pyarrow and `datasets` all read.
pub fn write_frame(file: &mut File, df: &mut DataFrame) -> Result<()> {
    let arrow_schema = df.schema().to_arrow(CompatLevel::oldest());
    let metadata =
        KeyValueMetadata::Static(vec![polars_parquet::arrow::write::schema_to_metadata_key(
            &arrow_schema,
        )]);
    ParquetWriter::new(file)
        .with_statistics(StatisticsOptions::default())
        .with_key_value_metadata(Some(metadata))
        .finish(df)?;
    Ok(())
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

/// Reads only the named columns of a Parquet file; a missing column is an error naming the file
/// and the column.
pub fn read_parquet_columns(path: &Path, columns: &[&str]) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = ParquetReader::new(file);
    let schema = reader
        .schema()
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    if let Some(missing) = columns.iter().find(|c| !schema.contains(c)) {
        bail!("{}: no column {missing:?}", path.display());
    }
    reader
        .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
        .finish()
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

/// A numeric column cast to `dtype`, or an error naming the file and column.
fn cast_column(df: &DataFrame, name: &str, path: &Path, dtype: &DataType) -> Result<Column> {
    let column = df
        .column(name)
        .with_context(|| format!("{}: no column {name:?}", path.display()))?;
    column.cast(dtype).with_context(|| {
        format!(
            "{}: column {name:?} is {}, expected {dtype}",
            path.display(),
            column.dtype()
        )
    })
}

/// An unsigned integer column without nulls.
pub fn u64_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<u64>> {
    let column = cast_column(df, name, path, &DataType::UInt64)?;
    let values = column.u64()?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.with_context(|| format!("{}: row {i}: {name} is null", path.display())))
        .collect()
}

/// A float column (nulls allowed).
pub fn f64_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<f64>>> {
    let column = cast_column(df, name, path, &DataType::Float64)?;
    Ok(column.f64()?.iter().collect())
}

/// A boolean column without nulls.
pub fn bool_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<bool>> {
    let column = cast_column(df, name, path, &DataType::Boolean)?;
    let values = column.bool()?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.with_context(|| format!("{}: row {i}: {name} is null", path.display())))
        .collect()
}

/// A list column read with `each` applied to every row's inner series (an empty series for a
/// null row).
pub fn list_column_map<T>(
    df: &DataFrame,
    name: &str,
    path: &Path,
    inner: DataType,
    mut each: impl FnMut(&Series) -> Result<T>,
) -> Result<Vec<T>> {
    let column = cast_column(df, name, path, &DataType::List(Box::new(inner)))?;
    let lists = column.list()?;
    let empty = Series::new_empty(PlSmallStr::EMPTY, &lists.inner_dtype().clone());
    let mut out = Vec::with_capacity(lists.len());
    for row in lists.amortized_iter() {
        match row {
            Some(series) => out.push(each(series.as_ref())?),
            None => out.push(each(&empty)?),
        }
    }
    Ok(out)
}

/// A string column as owned optional values, or an error naming the file and column.
pub fn string_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let column = df
        .column(name)
        .with_context(|| format!("{}: no column {name:?}", path.display()))?;
    let values = column.str().with_context(|| {
        format!(
            "{}: column {name:?} is {}, expected strings",
            path.display(),
            column.dtype()
        )
    })?;
    Ok((0..values.len())
        .map(|i| values.get(i).map(str::to_owned))
        .collect())
}

/// A column of string lists, typed even when there are no rows.
pub fn list_str_column(name: &str, lists: impl Iterator<Item = Vec<String>>) -> Column {
    list_column(
        name,
        lists.map(|v| Series::new(PlSmallStr::EMPTY, v)).collect(),
        DataType::String,
    )
}

/// A column of float lists, typed even when there are no rows.
pub fn list_f64_column(name: &str, lists: impl Iterator<Item = Vec<f64>>) -> Column {
    list_column(
        name,
        lists.map(|v| Series::new(PlSmallStr::EMPTY, v)).collect(),
        DataType::Float64,
    )
}

fn list_column(name: &str, series: Vec<Series>, inner: DataType) -> Column {
    if series.is_empty() {
        return Series::new_empty(name.into(), &DataType::List(Box::new(inner))).into();
    }
    Series::new(name.into(), series).into()
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
        assert_eq!(
            string_column(&back, "a", &path).unwrap(),
            vec![Some("x".into()), Some("y".into())]
        );
        let err = string_column(&back, "b", &path).unwrap_err().to_string();
        assert!(
            err.contains("column \"b\" is f64, expected strings"),
            "{err}"
        );
    }

    /// The Arrow schema stored in the file is the oldest-compatibility one (`large_string`), not
    /// polars' default (`string_view`, which pandas cannot convert inside lists; checked by hand
    /// with pyarrow 26 and pandas 3.1).
    #[test]
    fn stored_arrow_schema_is_the_portable_one() {
        use polars::prelude::{NamedFrom, Series};
        use polars_parquet::arrow::write::schema_to_metadata_key;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let lists = Series::new("l".into(), vec![Series::new("".into(), vec!["a", "b"])]);
        let mut df =
            DataFrame::new_infer_height(vec![Series::new("s".into(), ["x"]).into(), lists.into()])
                .unwrap();
        write_parquet(&mut df, &path).unwrap();
        let meta =
            polars_parquet::arrow::read::read_metadata(&mut File::open(&path).unwrap()).unwrap();
        let stored: Vec<_> = meta.key_value_metadata().clone().unwrap_or_default();
        let stored = stored
            .iter()
            .find(|kv| kv.key == "ARROW:schema")
            .and_then(|kv| kv.value.clone())
            .unwrap();
        let portable = schema_to_metadata_key(&df.schema().to_arrow(CompatLevel::oldest()))
            .value
            .unwrap();
        let newest = schema_to_metadata_key(&df.schema().to_arrow(CompatLevel::newest()))
            .value
            .unwrap();
        assert_ne!(portable, newest);
        assert_eq!(stored, portable);
        assert!(read_parquet(&path).unwrap().equals(&df));
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"not parquet at all").unwrap();
        let err = format!("{:#}", read_parquet(&path).unwrap_err());
        assert!(
            err.contains("bad.parquet: not a readable Parquet file"),
            "{err}"
        );
    }
}
