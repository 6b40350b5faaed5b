//! Chat templates render byte-identically to transformers' `apply_chat_template` (jinja2) for
//! Qwen2.5's and SmolLM2's real templates, a Qwen3-style reasoning template and a Llama-3.2-style
//! one (tests/fixtures/tokenizer/chat_cases.json, written by make_fixtures.py).

#![allow(clippy::unwrap_used)] // fixtures are ours; a panic is the test failing

use std::path::PathBuf;

use model::chat_template::{
    ChatMessage, ChatTemplate, RenderOptions, TemplateValue, TokenizerConfig,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

/// The cases, parsed into template values so dict key order (which `tojson` shows) is kept.
fn cases() -> Vec<TemplateValue> {
    let text = std::fs::read_to_string(fixtures().join("chat_cases.json")).unwrap();
    let all: TemplateValue = serde_json::from_str(&text).unwrap();
    all.try_iter().unwrap().collect()
}

fn field(case: &TemplateValue, name: &str) -> TemplateValue {
    case.get_attr(name).unwrap()
}

#[test]
fn templates_render_like_transformers() {
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut per_dir = std::collections::BTreeMap::new();
    for case in &cases {
        let dir = field(case, "dir").as_str().unwrap().to_string();
        let template = ChatTemplate::from_model_dir(fixtures().join(&dir)).unwrap();
        let messages: Vec<TemplateValue> = field(case, "messages").try_iter().unwrap().collect();
        let extra = field(case, "extra");
        let tools = field(case, "tools");
        let options = RenderOptions {
            add_generation_prompt: field(case, "add_generation_prompt").is_true(),
            tools: (!tools.is_undefined()).then_some(tools),
            documents: None,
            extra: extra
                .try_iter()
                .unwrap()
                .map(|k| (k.as_str().unwrap().to_string(), extra.get_item(&k).unwrap()))
                .collect(),
        };
        let rendered = template.render_with(&messages, &options).unwrap();
        let expected = field(case, "expected");
        assert_eq!(
            rendered,
            expected.as_str().unwrap(),
            "{dir}: {messages:?} {options:?}"
        );
        *per_dir.entry(dir).or_insert(0) += 1;
    }
    assert_eq!(per_dir.len(), 4, "{per_dir:?}");
}

#[test]
fn qwen_defaults_the_system_message_and_adds_the_generation_prompt() {
    let template = ChatTemplate::from_model_dir(fixtures().join("qwen2_5")).unwrap();
    let out = template.render(&[ChatMessage::user("Hi")], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let out = template
        .render(
            &[
                ChatMessage::system("S"),
                ChatMessage::user("Hi"),
                ChatMessage::assistant("Yo"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
}

#[test]
fn named_template_list_picks_default() {
    let config =
        TokenizerConfig::from_file(fixtures().join("smollm2/tokenizer_config.json")).unwrap();
    assert_eq!(config.chat_templates.len(), 2);
    let template = ChatTemplate::from_tokenizer_config(&config).unwrap();
    assert!(template.source().contains("SmolLM"));
    assert_eq!(
        template.special_tokens().eos_token.as_deref(),
        Some("<|im_end|>")
    );
    let plain = ChatTemplate::new(
        config.chat_template(Some("plain")).unwrap(),
        config.special_tokens(),
        "plain",
    )
    .unwrap();
    assert_eq!(
        plain
            .render(
                &[ChatMessage::user("a"), ChatMessage::assistant("b")],
                false
            )
            .unwrap(),
        "a\nb\n"
    );
}

#[test]
fn llama_template_sees_bos_token_and_strftime() {
    let template = ChatTemplate::from_model_dir(fixtures().join("llama3")).unwrap();
    // No date_string: the template calls strftime_now("%d %b %Y").
    let out = template.render(&[ChatMessage::user("Hi")], true).unwrap();
    assert!(
        out.starts_with("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"),
        "{out}"
    );
    let date_line = out.lines().find(|l| l.starts_with("Today Date: ")).unwrap();
    let date = date_line.trim_start_matches("Today Date: ");
    assert_eq!(date.len(), 11, "{date}");
}

#[test]
fn chat_template_json_and_jinja_files_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"eos_token": "</s>", "chat_template": "config"}"#,
    )
    .unwrap();
    assert_eq!(
        ChatTemplate::from_model_dir(dir.path()).unwrap().source(),
        "config"
    );
    std::fs::write(
        dir.path().join("chat_template.json"),
        r#"{"chat_template": "json {{ eos_token }}"}"#,
    )
    .unwrap();
    let template = ChatTemplate::from_model_dir(dir.path()).unwrap();
    assert_eq!(
        template.render::<ChatMessage>(&[], false).unwrap(),
        "json </s>"
    );
    std::fs::write(dir.path().join("chat_template.jinja"), "jinja\n").unwrap();
    assert_eq!(
        ChatTemplate::from_model_dir(dir.path())
            .unwrap()
            .render::<ChatMessage>(&[], false)
            .unwrap(),
        "jinja"
    );
}

#[test]
fn missing_template_is_an_error_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = ChatTemplate::from_model_dir(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}
