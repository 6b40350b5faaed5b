//! Named `f32` tensors in a safetensors file: the format of training checkpoints (trainable
//! parameters and optimizer moments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

/// Name -> (shape, row-major values).
pub type F32Map = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: tensor {name} is {dtype:?}, expected F32")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
}

/// Writes `tensors` to `path` (through a temporary file renamed into place).
pub fn write_f32_map(path: &Path, tensors: &F32Map) -> Result<(), StoreError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), raw)
        })
        .collect();
    let format = |message: String| StoreError::Format {
        path: path.to_path_buf(),
        message,
    };
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            TensorView::new(Dtype::F32, shape.clone(), raw)
                .map(|view| (name.clone(), view))
                .map_err(|e| format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, None).map_err(|e| format(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads every tensor of `path`; all must be F32.
pub fn read_f32_map(path: &Path) -> Result<F32Map, StoreError> {
    let data = std::fs::read(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let tensors = SafeTensors::deserialize(&data).map_err(|e| StoreError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = F32Map::new();
    for (name, view) in tensors.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(StoreError::Dtype {
                path: path.to_path_buf(),
                name,
                dtype: view.dtype(),
            });
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut map = F32Map::new();
        map.insert(
            "p.3".into(),
            (vec![2, 2], vec![1.0, -2.5, 3.0, f32::MIN_POSITIVE]),
        );
        map.insert("p.10".into(), (vec![1], vec![7.0]));
        write_f32_map(&path, &map).unwrap();
        assert_eq!(read_f32_map(&path).unwrap(), map);
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(matches!(
            read_f32_map(&path),
            Err(StoreError::Format { .. })
        ));
        assert!(matches!(
            read_f32_map(&dir.path().join("missing")),
            Err(StoreError::Io { .. })
        ));
    }
}
