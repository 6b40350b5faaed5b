//! The run folder (see `pipeline/ROUND.md`): the manifest, one sub-folder per round holding its
//! journal, its part tables and, once complete, its commit marker, and the top-level tables
//! rebuilt from the committed parts.
//!
//! Every file is written atomically (temp file + rename). A round is committed when its marker
//! `COMMITTED` exists; it is written after the round's part tables, so a crash at any moment
//! leaves either a committed round with all its parts or an uncommitted one whose parts are
//! discarded on the next start (its journal is kept and reused).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::DataFrame;
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::parquet::{read_parquet, write_parquet};

use super::execute::RoundOutput;
use super::rows::RoundStats;
use super::tables::{
    instances_frame, instructions_frame, machine_pool, rejected_frame, rounds_frame,
};

pub const MANIFEST: &str = "manifest.json";
pub const MARKER: &str = "COMMITTED";
pub const JOURNAL: &str = "journal.jsonl";
pub const ROUNDS_DIR: &str = "rounds";
/// The tables of a run; each round's folder holds its own part of the first three.
pub const INSTRUCTIONS: &str = "instructions.parquet";
pub const INSTANCES: &str = "instances.parquet";
pub const REJECTED: &str = "rejected.parquet";
pub const ROUNDS: &str = "rounds.parquet";
const PARTS: [&str; 3] = [INSTRUCTIONS, INSTANCES, REJECTED];

/// An open run folder.
#[derive(Debug)]
pub struct RunFolder {
    root: PathBuf,
    committed: u32,
}

impl RunFolder {
    /// Opens the run folder at `root` for a run with this identity (a missing folder is created
    /// by [`RunFolder::write_manifest`]).
    ///
    /// An existing run with the same identity resumes after its last committed round: parts of
    /// an uncommitted round are removed (its journal stays). A different identity is an error
    /// naming what differs, unless `force`, which removes the old run's files and starts over.
    /// A non-empty folder that is not a run is an error unless `force`.
    pub fn open(root: &Path, identity: &Value, force: bool) -> Result<RunFolder> {
        if !root.exists() {
            // Created with the manifest, once the generator is open.
            return Ok(RunFolder {
                root: root.to_path_buf(),
                committed: 0,
            });
        }
        remove_temp_files(root)?;
        let manifest_path = root.join(MANIFEST);
        if manifest_path.exists() {
            let manifest = read_manifest(&manifest_path)?;
            let old = manifest.get("identity").unwrap_or(&Value::Null);
            if old != identity {
                if !force {
                    bail!(
                        "{} holds a run with different settings ({}); rerun with the same settings to resume it, \
                         choose another --out, or pass --force to delete that run and start over",
                        root.display(),
                        differences(old, identity).join(", ")
                    );
                }
                remove_run(root)?;
            }
        } else if has_entries(root)? {
            if !force {
                bail!(
                    "{} is not empty and has no {MANIFEST}: not a run folder; choose another --out or pass --force",
                    root.display()
                );
            }
            remove_run(root)?;
        }
        let mut folder = RunFolder {
            root: root.to_path_buf(),
            committed: 0,
        };
        folder.committed = folder.scan()?;
        Ok(folder)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Rounds committed so far (they are `1..=committed`).
    pub fn committed(&self) -> u32 {
        self.committed
    }

    /// The folder of round `round`.
    pub fn round_dir(&self, round: u32) -> PathBuf {
        self.root.join(ROUNDS_DIR).join(format!("round-{round:04}"))
    }

    /// The journal of round `round`, its folder created.
    pub fn journal_path(&self, round: u32) -> Result<PathBuf> {
        let dir = self.round_dir(round);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir.join(JOURNAL))
    }

    /// Writes the manifest (atomically).
    pub fn write_manifest(&self, manifest: &Value) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let bytes = serde_json::to_vec_pretty(manifest).context("encoding the manifest")?;
        write_atomic(&self.root.join(MANIFEST), &bytes)
    }

    /// Commits the next round: its part tables, then its marker (holding its counts), then the
    /// top-level tables.
    pub fn commit(&mut self, output: &RoundOutput) -> Result<()> {
        let round = self.committed + 1;
        anyhow::ensure!(
            output.stats.round == round,
            "internal: committing round {} after {}",
            output.stats.round,
            self.committed
        );
        let dir = self.round_dir(round);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_parquet(
            &mut instructions_frame(&output.kept)?,
            &dir.join(INSTRUCTIONS),
        )?;
        write_parquet(
            &mut instances_frame(&output.instances)?,
            &dir.join(INSTANCES),
        )?;
        write_parquet(&mut rejected_frame(&output.rejected)?, &dir.join(REJECTED))?;
        sync_dir(&dir)?;
        let marker =
            serde_json::to_vec_pretty(&output.stats).context("encoding the commit marker")?;
        write_atomic(&dir.join(MARKER), &marker)?;
        sync_dir(&dir)?;
        self.committed = round;
        self.rebuild_tables()
    }

    /// Rewrites the four top-level tables from the committed rounds (each file atomically).
    pub fn rebuild_tables(&self) -> Result<()> {
        let mut parts: Vec<DataFrame> = vec![
            instructions_frame(&[])?,
            instances_frame(&[])?,
            rejected_frame(&[])?,
        ];
        for round in 1..=self.committed {
            let dir = self.round_dir(round);
            for (all, name) in parts.iter_mut().zip(PARTS) {
                let path = dir.join(name);
                let part = read_parquet(&path)?;
                all.vstack_mut(&part).with_context(|| {
                    format!("{}: columns differ from the other rounds'", path.display())
                })?;
            }
        }
        for (mut df, name) in parts.into_iter().zip(PARTS) {
            df.rechunk_mut_par();
            write_parquet(&mut df, &self.root.join(name))?;
        }
        write_parquet(
            &mut rounds_frame(&self.round_stats()?)?,
            &self.root.join(ROUNDS),
        )
    }

    /// The counts of every committed round, from their markers.
    pub fn round_stats(&self) -> Result<Vec<RoundStats>> {
        (1..=self.committed)
            .map(|round| {
                let path = self.round_dir(round).join(MARKER);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not a commit marker", path.display()))
            })
            .collect()
    }

    /// The machine pool of the committed rounds, `(id, instruction)` in commit order.
    pub fn machine_pool(&self) -> Result<Vec<(String, String)>> {
        let mut pool = Vec::new();
        for round in 1..=self.committed {
            let path = self.round_dir(round).join(INSTRUCTIONS);
            pool.extend(machine_pool(&read_parquet(&path)?, &path)?);
        }
        Ok(pool)
    }

    /// Finds the committed rounds and removes the parts of uncommitted ones.
    fn scan(&self) -> Result<u32> {
        let dir = self.root.join(ROUNDS_DIR);
        if !dir.exists() {
            return Ok(0);
        }
        let mut rounds: Vec<(u32, bool)> = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(round) = name
                .strip_prefix("round-")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            remove_temp_files(&entry.path())?;
            rounds.push((round, entry.path().join(MARKER).exists()));
        }
        rounds.sort_unstable();
        let mut committed_to = 0;
        for &(round, done) in &rounds {
            if done {
                if round != committed_to + 1 {
                    bail!("{}: round {round} is committed but round {} is not; the run folder is damaged", dir.display(), committed_to + 1);
                }
                committed_to = round;
            }
        }
        for &(round, done) in &rounds {
            if !done {
                let round_dir = self.round_dir(round);
                for part in PARTS {
                    let path = round_dir.join(part);
                    if path.exists() {
                        std::fs::remove_file(&path)
                            .with_context(|| format!("cannot remove {}", path.display()))?;
                    }
                }
            }
        }
        Ok(committed_to)
    }
}

fn read_manifest(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}

/// The top-level keys (one level down for objects) whose values differ.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return vec!["the manifest has no identity".to_owned()];
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut sub: Vec<&String> = a.keys().chain(b.keys()).collect();
                sub.sort_unstable();
                sub.dedup();
                out.extend(
                    sub.into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .map(|k| format!("{key}.{k}")),
                );
            }
            (a, b) if a != b => out.push(key.clone()),
            _ => {}
        }
    }
    out
}

/// Whether `dir` holds anything.
/// Whether `dir` holds anything but the files `selfinstruct iterate` keeps beside a run.
fn has_entries(dir: &Path) -> Result<bool> {
    const LOOP_FILES: [&str; 3] = ["iterate.json", "iterations.parquet", "iterations"];
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .any(|e| !LOOP_FILES.contains(&e.file_name().to_string_lossy().as_ref())))
}

/// Removes what a run writes in its folder (and nothing else).
fn remove_run(root: &Path) -> Result<()> {
    for name in [MANIFEST, INSTRUCTIONS, INSTANCES, REJECTED, ROUNDS] {
        let path = root.join(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    let rounds = root.join(ROUNDS_DIR);
    if rounds.exists() {
        std::fs::remove_dir_all(&rounds)
            .with_context(|| format!("cannot remove {}", rounds.display()))?;
    }
    Ok(())
}

/// Removes temporary files that an atomic write killed midway left behind (`.name.XXXX.tmp`).
fn remove_temp_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.path().is_file() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Flushes a folder's entries (renames) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush {}", dir.display()))
}
