//! Bad checkpoint folders give typed errors naming the file and tensor, never a panic.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use model::load::load_checkpoint;
use model::{ConfigError, ForwardError, LoadError};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// A temp copy of a fixture folder.
fn copy(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// Rewrite `file` with `edit` applied to its (name, dtype, shape, bytes) list.
fn rewrite(
    file: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(file, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn load(dir: &Path) -> Result<(), LoadError> {
    load_checkpoint::<B>(dir, &Default::default()).map(|_| ())
}

#[test]
fn missing_config_names_the_file() {
    let tmp = copy("qwen2_gqa4_untied");
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let e = load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, LoadError::Config(ConfigError::Read { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn malformed_config_names_the_file() {
    let tmp = copy("qwen2_gqa4_untied");
    std::fs::write(tmp.path().join("config.json"), "{\"vocab_size\": 12,").unwrap();
    let e = load(tmp.path()).unwrap_err();
    assert!(
        matches!(e, LoadError::Config(ConfigError::Parse { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn no_weights() {
    let tmp = copy("qwen2_gqa4_untied");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    assert!(matches!(
        load(tmp.path()).unwrap_err(),
        LoadError::NoWeights { .. }
    ));
}

#[test]
fn missing_tensor_is_named() {
    let tmp = copy("qwen2_gqa4_untied");
    rewrite(&tmp.path().join("model.safetensors"), |t| {
        t.retain(|x| x.0 != "model.layers.1.mlp.up_proj.weight")
    });
    match load(tmp.path()).unwrap_err() {
        LoadError::MissingTensor { name, .. } => {
            assert_eq!(name, "model.layers.1.mlp.up_proj.weight")
        }
        e => panic!("{e}"),
    }
}

#[test]
fn unexpected_tensor_is_named() {
    let tmp = copy("qwen2_gqa4_untied");
    rewrite(&tmp.path().join("model.safetensors"), |t| {
        t.push((
            "model.layers.1.mlp.extra.weight".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0; 8],
        ))
    });
    match load(tmp.path()).unwrap_err() {
        LoadError::UnexpectedTensor { name, file } => {
            assert_eq!(name, "model.layers.1.mlp.extra.weight");
            assert!(file.ends_with("model.safetensors"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn rotary_inv_freq_buffers_are_ignored() {
    let tmp = copy("qwen2_gqa4_untied");
    rewrite(&tmp.path().join("model.safetensors"), |t| {
        t.push((
            "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
            safetensors::Dtype::F32,
            vec![4],
            vec![0; 16],
        ))
    });
    load(tmp.path()).unwrap();
}

#[test]
fn wrong_shape_is_named() {
    let tmp = copy("qwen2_gqa4_untied");
    rewrite(&tmp.path().join("model.safetensors"), |t| {
        for x in t
            .iter_mut()
            .filter(|x| x.0 == "model.layers.0.self_attn.k_proj.weight")
        {
            // [16, 64] -> [64, 16], same byte count.
            x.2 = vec![64, 16];
        }
    });
    match load(tmp.path()).unwrap_err() {
        LoadError::Shape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "model.layers.0.self_attn.k_proj.weight");
            assert_eq!(expected, vec![16, 64]);
            assert_eq!(found, vec![64, 16]);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn unsupported_dtype_is_named() {
    let tmp = copy("qwen2_gqa4_untied");
    rewrite(&tmp.path().join("model.safetensors"), |t| {
        for x in t.iter_mut().filter(|x| x.0 == "model.norm.weight") {
            x.1 = safetensors::Dtype::I32;
        }
    });
    match load(tmp.path()).unwrap_err() {
        LoadError::Dtype { name, .. } => assert_eq!(name, "model.norm.weight"),
        e => panic!("{e}"),
    }
}

#[test]
fn truncated_safetensors_names_the_file() {
    let tmp = copy("qwen2_gqa4_untied");
    let file = tmp.path().join("model.safetensors");
    for len in [0u64, 5, 100, 200_000] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len)
            .unwrap();
        match load(tmp.path()).unwrap_err() {
            LoadError::Safetensors { path, .. } => assert_eq!(path, file),
            e => panic!("{e}"),
        }
    }
}

#[test]
fn missing_shard_names_the_file() {
    let tmp = copy("llama_gqa2_sharded");
    std::fs::remove_file(tmp.path().join("model-00002-of-00003.safetensors")).unwrap();
    let e = load(tmp.path()).unwrap_err();
    assert!(
        e.to_string().contains("model-00002-of-00003.safetensors"),
        "{e}"
    );
}

#[test]
fn index_pointing_at_the_wrong_shard() {
    let tmp = copy("llama_gqa2_sharded");
    let index = tmp.path().join("model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let map = json["weight_map"].as_object_mut().unwrap();
    let (name, file) = map
        .iter()
        .find(|(_, f)| f.as_str() != Some("model-00001-of-00003.safetensors"))
        .map(|(n, f)| (n.clone(), f.clone()))
        .unwrap();
    assert_ne!(file, "model-00001-of-00003.safetensors");
    map.insert(name.clone(), "model-00001-of-00003.safetensors".into());
    std::fs::write(&index, json.to_string()).unwrap();
    match load(tmp.path()).unwrap_err() {
        LoadError::MissingTensor { name: n, file } => {
            assert_eq!(n, name);
            assert!(file.ends_with("model-00001-of-00003.safetensors"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn index_escaping_the_folder_is_rejected() {
    let tmp = copy("llama_gqa2_sharded");
    let index = tmp.path().join("model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    json["weight_map"]["model.norm.weight"] = "../model.safetensors".into();
    std::fs::write(&index, json.to_string()).unwrap();
    assert!(matches!(
        load(tmp.path()).unwrap_err(),
        LoadError::Index { .. }
    ));
}

#[test]
fn tied_checkpoint_with_a_stored_head() {
    // Equal to the embedding: accepted. Different: rejected.
    let tmp = copy("qwen2_mha_tied");
    let file = tmp.path().join("model.safetensors");
    rewrite(&file, |t| {
        let emb = t
            .iter()
            .find(|x| x.0 == "model.embed_tokens.weight")
            .unwrap()
            .clone();
        t.push(("lm_head.weight".into(), emb.1, emb.2, emb.3));
    });
    load(tmp.path()).unwrap();
    rewrite(&file, |t| {
        for x in t.iter_mut().filter(|x| x.0 == "lm_head.weight") {
            x.3[0] ^= 0x40;
        }
    });
    assert!(matches!(
        load(tmp.path()).unwrap_err(),
        LoadError::TiedMismatch { .. }
    ));
}

#[test]
fn out_of_vocabulary_ids_are_an_error() {
    let (_, model) =
        load_checkpoint::<B>(&fixture("qwen2_gqa4_untied"), &Default::default()).unwrap();
    assert_eq!(
        model.logits(&[1, 256]).unwrap_err(),
        ForwardError::TokenOutOfRange {
            id: 256,
            vocab: 256
        }
    );
    assert_eq!(model.logits(&[]).unwrap_err(), ForwardError::Empty);
}
