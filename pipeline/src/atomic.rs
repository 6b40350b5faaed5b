//! Atomic file writes: write to a temporary file in the destination's folder, flush it to disk,
//! then rename over the destination, so a reader (or a crash) never sees a half-written file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file being written that only appears under its final name on [`PendingFile::commit`].
/// Dropped without commit, the temporary file is removed.
pub struct PendingFile {
    temp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
}

impl PendingFile {
    /// Starts a temporary file beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let (dir, name) = beside(dest);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(PendingFile {
            temp: Some(temp),
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        // `temp` is only taken by `commit`, which consumes self.
        self.temp
            .as_mut()
            .map(|t| t.as_file_mut())
            .expect("pending file used after commit")
    }

    /// Flushes the data to disk and renames the file to its destination.
    pub fn commit(mut self) -> Result<()> {
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        temp.as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {}", self.dest.display()))?;
        temp.persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", self.dest.display()))?;
        Ok(())
    }
}

/// The folder `dest` will be in, and its file name.
fn beside(dest: &Path) -> (PathBuf, String) {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// A folder being filled that only appears under its final name on [`PendingDir::commit`].
/// Dropped without commit, the temporary folder and its contents are removed.
pub struct PendingDir {
    temp: tempfile::TempDir,
    dest: PathBuf,
}

impl PendingDir {
    /// Starts a temporary folder beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let (dir, name) = beside(dest);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempdir_in(&dir)
            .with_context(|| format!("cannot create a temporary folder in {}", dir.display()))?;
        Ok(PendingDir {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary folder to fill.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the folder to its destination, replacing an existing one (which is removed only
    /// now, when the new one is complete).
    pub fn commit(self) -> Result<()> {
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest)
                .with_context(|| format!("cannot remove the old {}", self.dest.display()))?;
        }
        let dest = self.dest;
        let temp = self.temp.keep();
        std::fs::rename(&temp, &dest).with_context(|| format!("cannot write {}", dest.display()))
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut pending = PendingFile::create(dest)?;
    let mut w = BufWriter::new(pending.file());
    w.write_all(bytes)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    w.flush()
        .with_context(|| format!("cannot write {}", dest.display()))?;
    drop(w);
    pending.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.parquet");
        {
            let mut p = PendingFile::create(&dest).unwrap();
            p.file().write_all(b"partial").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn pending_dir_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ds");
        {
            let p = PendingDir::create(&dest).unwrap();
            std::fs::write(p.path().join("a"), "x").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("old"), "x").unwrap();
        let p = PendingDir::create(&dest).unwrap();
        std::fs::write(p.path().join("new"), "y").unwrap();
        p.commit().unwrap();
        assert!(dest.join("new").exists() && !dest.join("old").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn commit_replaces_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.json");
        std::fs::write(&dest, "old").unwrap();
        write_atomic(&dest, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
