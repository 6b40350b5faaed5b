//! The generation journal of a round: an append-only JSON Lines file of finished generator
//! responses, keyed by a hash of the request, flushed to disk after every chunk. A rerun after a
//! crash or Ctrl-C answers the requests it finds here without asking the generator again, so
//! generation already paid for (tens of minutes with a local model) is not lost.
//!
//! Only successful responses are written; a failed request is asked again on the rerun. A line
//! cut short by a crash is removed when the journal is opened.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::generator::{GenRequest, Generation};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub generation: Generation,
    /// Wall seconds of the generator call that produced it.
    pub seconds: f64,
}

/// The key of a request: SHA-256 of its JSON (prompt, sampling parameters and seed).
pub fn request_key(request: &GenRequest) -> Result<String> {
    let json = serde_json::to_vec(request).context("encoding a request for the journal")?;
    Ok(Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashMap<String, (Generation, f64)>,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads what it holds.
    pub fn open(path: &Path) -> Result<Journal> {
        let mut entries = HashMap::new();
        if path.exists() {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            // Everything after the last line break is a line the crash cut short.
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                file.set_len(complete as u64)
                    .with_context(|| format!("cannot truncate {}", path.display()))?;
                tracing::warn!(path = %path.display(), "journal: removed a line cut short by a crash");
            }
            for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let entry: Entry = serde_json::from_slice(line).with_context(|| {
                    format!("{}:{}: not a journal entry", path.display(), i + 1)
                })?;
                entries.insert(entry.key, (entry.generation, entry.seconds));
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// The saved answer to the request with this key.
    pub fn get(&self, key: &str) -> Option<&(Generation, f64)> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends entries and flushes them to disk before returning.
    pub fn append(&mut self, new: Vec<Entry>) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for entry in &new {
            serde_json::to_writer(&mut buf, entry).context("encoding a journal entry")?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.file
            .sync_data()
            .with_context(|| format!("cannot flush {}", self.path.display()))?;
        for entry in new {
            self.entries
                .insert(entry.key, (entry.generation, entry.seconds));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{FinishReason, Prompt, Sample, SamplingParams};

    fn request(prompt: &str, seed: u64) -> GenRequest {
        GenRequest {
            prompt: Prompt::Text(prompt.into()),
            params: SamplingParams {
                seed: Some(seed),
                ..SamplingParams::default()
            },
        }
    }

    fn generation(text: &str) -> Generation {
        Generation {
            samples: vec![Sample {
                text: text.into(),
                finish_reason: FinishReason::Stop,
                completion_tokens: Some(3),
            }],
            prompt_tokens: Some(7),
            generator: "test".into(),
        }
    }

    #[test]
    fn keys_depend_on_prompt_and_parameters() {
        let a = request_key(&request("p", 1)).unwrap();
        assert_eq!(a, request_key(&request("p", 1)).unwrap());
        assert_ne!(a, request_key(&request("p", 2)).unwrap());
        assert_ne!(a, request_key(&request("q", 1)).unwrap());
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn entries_survive_reopening_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        assert!(j.is_empty());
        j.append(vec![Entry {
            key: "k1".into(),
            generation: generation("one"),
            seconds: 0.5,
        }])
        .unwrap();
        j.append(vec![Entry {
            key: "k2".into(),
            generation: generation("two"),
            seconds: 1.0,
        }])
        .unwrap();
        drop(j);
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"k3\",\"gener").unwrap();
        drop(f);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j.get("k2").unwrap().0, generation("two"));
        assert!(j.get("k3").is_none());
        j.append(vec![Entry {
            key: "k3".into(),
            generation: generation("three"),
            seconds: 2.0,
        }])
        .unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.len(), 3);
        assert_eq!(j.get("k3").unwrap().1, 2.0);
    }

    #[test]
    fn a_damaged_complete_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let err = format!("{:#}", Journal::open(&path).unwrap_err());
        assert!(
            err.contains("journal.jsonl:1: not a journal entry"),
            "{err}"
        );
    }
}
