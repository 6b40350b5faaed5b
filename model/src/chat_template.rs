//! Chat templates: the checkpoint's own Jinja template, rendered with `minijinja` the way
//! transformers' `apply_chat_template` renders it with jinja2.
//!
//! What transformers sets up, and this module mirrors (`transformers/utils/chat_template_utils.py`):
//! - `trim_blocks` and `lstrip_blocks` on, trailing newline dropped, `{% break %}`/`{% continue %}`;
//! - context: `messages`, `add_generation_prompt`, `tools` and `documents` (none unless given), the
//!   tokenizer's special tokens as strings (`bos_token`, `eos_token`, `unk_token`, `pad_token`), and
//!   any extra variables (`date_string`, `enable_thinking`, ...);
//! - `raise_exception(message)`, `strftime_now(format)` and a `tojson` filter that writes what
//!   Python's `json.dumps(x, ensure_ascii=False)` writes (`", "` and `": "` separators, keys in
//!   insertion order, `indent=`), not jinja2's HTML-escaping default;
//! - Python string and dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`, ...)
//!   through `minijinja-contrib`'s pycompat;
//! - the `{% generation %}` tag (assistant-mask tracking) renders its body unchanged.
//!
//! Templates are untrusted input: rendering runs on a fuel budget, so a template cannot loop for
//! ever, and every failure is a [`ChatTemplateError`].
//!
//! Known differences from jinja2 that no template in use relies on: minijinja's `trim` and
//! pycompat `strip()` use Rust's notion of whitespace (Python also strips `\x1c`-`\x1f`); `tojson`
//! writes floats like Python's `repr` but big integers beyond i128 are not supported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use minijinja::Value as TemplateValue;
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

mod pyjson;
mod strftime;

/// Name under which the template is stored in the environment.
const TEMPLATE_NAME: &str = "chat_template";
/// Instructions one render may execute; far above any real chat, far below "hangs".
const RENDER_FUEL: u64 = 50_000_000;

/// Errors from reading or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or a field has the wrong type.
    #[error("{path} is not valid: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        message: String,
    },
    /// The checkpoint has no chat template.
    #[error("no chat template in {0} (no chat_template.jinja, chat_template.json or tokenizer_config.json `chat_template`)")]
    Missing(PathBuf),
    /// Several named templates and none called `default`, or the asked-for name is absent.
    #[error("{path} has chat templates named {available:?} but none named {wanted:?}")]
    NoSuchTemplate {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        wanted: String,
        /// The names the file has.
        available: Vec<String>,
    },
    /// The template does not parse.
    #[error("chat template from {origin} does not parse: {source:#}")]
    Syntax {
        /// Where the template came from.
        origin: String,
        /// The parser's error, with line.
        source: Error,
    },
    /// The template failed while rendering (including its own `raise_exception`).
    #[error("chat template from {origin} failed to render: {source:#}")]
    Render {
        /// Where the template came from.
        origin: String,
        /// The engine's error, with line.
        source: Error,
    },
}

/// One chat message. Templates read `role` and `content`; for tool calls and other fields render
/// any `Serialize` type (or [`TemplateValue`]s) instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The special tokens a template sees as variables, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `bos_token`.
    pub bos_token: Option<String>,
    /// `eos_token`.
    pub eos_token: Option<String>,
    /// `unk_token`.
    pub unk_token: Option<String>,
    /// `pad_token`.
    pub pad_token: Option<String>,
}

/// What `tokenizer_config.json` says about templates and special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerConfig {
    /// The file this was read from (for error messages).
    pub path: PathBuf,
    /// Templates by name; a plain string `chat_template` is stored under `default`.
    pub chat_templates: Vec<(String, String)>,
    /// `bos_token`, from a string or an AddedToken object's `content`.
    pub bos_token: Option<String>,
    /// `eos_token`.
    pub eos_token: Option<String>,
    /// `unk_token`.
    pub unk_token: Option<String>,
    /// `pad_token`.
    pub pad_token: Option<String>,
    /// `add_bos_token`, when present.
    pub add_bos_token: Option<bool>,
    /// `add_eos_token`, when present.
    pub add_eos_token: Option<bool>,
}

impl TokenizerConfig {
    /// Reads a `tokenizer_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ChatTemplateError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::from_json(&text, path)
    }

    /// Parses the text of a `tokenizer_config.json`; `path` names it in errors.
    pub fn from_json(text: &str, path: impl AsRef<Path>) -> Result<Self, ChatTemplateError> {
        let path = path.as_ref().to_path_buf();
        let json_error = |message: String| ChatTemplateError::Json {
            path: path.clone(),
            message,
        };
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
        let object = root
            .as_object()
            .ok_or_else(|| json_error("the top level is not a JSON object".into()))?;

        let chat_templates = match object.get("chat_template") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(value) => parse_templates(value).map_err(json_error)?,
        };
        let token = |key: &str| -> Result<Option<String>, ChatTemplateError> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Object(added)) => match added.get("content") {
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    _ => Err(json_error(format!(
                        "`{key}` is an object without a string `content`"
                    ))),
                },
                Some(_) => Err(json_error(format!(
                    "`{key}` is neither a string nor a token object"
                ))),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, ChatTemplateError> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(json_error(format!("`{key}` is not a boolean"))),
            }
        };
        Ok(Self {
            chat_templates,
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            unk_token: token("unk_token")?,
            pad_token: token("pad_token")?,
            add_bos_token: flag("add_bos_token")?,
            add_eos_token: flag("add_eos_token")?,
            path,
        })
    }

    /// The special tokens as template variables.
    pub fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens {
            bos_token: self.bos_token.clone(),
            eos_token: self.eos_token.clone(),
            unk_token: self.unk_token.clone(),
            pad_token: self.pad_token.clone(),
        }
    }

    /// The template called `name`, or with `None` the one transformers picks: the only one, or
    /// the one named `default`.
    pub fn chat_template(&self, name: Option<&str>) -> Result<&str, ChatTemplateError> {
        if self.chat_templates.is_empty() {
            return Err(ChatTemplateError::Missing(self.path.clone()));
        }
        let wanted = name.unwrap_or("default");
        if let Some((_, template)) = self.chat_templates.iter().find(|(n, _)| n == wanted) {
            return Ok(template.as_str());
        }
        match (name, self.chat_templates.as_slice()) {
            (None, [(_, only)]) => Ok(only.as_str()),
            _ => Err(ChatTemplateError::NoSuchTemplate {
                path: self.path.clone(),
                wanted: wanted.to_string(),
                available: self.chat_templates.iter().map(|(n, _)| n.clone()).collect(),
            }),
        }
    }
}

/// `chat_template` is a string, or a list of `{"name", "template"}` objects.
fn parse_templates(value: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    match value {
        serde_json::Value::String(s) => Ok(vec![("default".to_string(), s.clone())]),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = item.get("name").and_then(|v| v.as_str());
                let template = item.get("template").and_then(|v| v.as_str());
                match (name, template) {
                    (Some(n), Some(t)) => Ok((n.to_string(), t.to_string())),
                    _ => Err(format!(
                        "`chat_template[{i}]` is not an object with string `name` and `template`"
                    )),
                }
            })
            .collect(),
        _ => Err("`chat_template` is neither a string nor a list of named templates".into()),
    }
}

fn read_text(path: &Path) -> Result<String, ChatTemplateError> {
    std::fs::read_to_string(path).map_err(|source| ChatTemplateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Options of one render beyond the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Append the header that starts the assistant's turn.
    pub add_generation_prompt: bool,
    /// Tool schemas (`tools`); `None` renders as Python's `None`.
    pub tools: Option<TemplateValue>,
    /// Retrieval documents (`documents`).
    pub documents: Option<TemplateValue>,
    /// Further variables (`date_string`, `enable_thinking`, ...); they override the defaults.
    pub extra: Vec<(String, TemplateValue)>,
}

/// A compiled chat template with the special tokens it is rendered with.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    special_tokens: SpecialTokens,
    origin: String,
}

impl ChatTemplate {
    /// Compiles `source`; `origin` names it in errors.
    pub fn new(
        source: impl Into<String>,
        special_tokens: SpecialTokens,
        origin: impl Into<String>,
    ) -> Result<Self, ChatTemplateError> {
        let source = source.into();
        let origin = origin.into();
        let mut env = transformers_environment();
        env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(&source))
            .map_err(|source| ChatTemplateError::Syntax {
                origin: origin.clone(),
                source,
            })?;
        Ok(Self {
            env,
            source,
            special_tokens,
            origin,
        })
    }

    /// The default template of a `tokenizer_config.json`, with its special tokens.
    pub fn from_tokenizer_config(config: &TokenizerConfig) -> Result<Self, ChatTemplateError> {
        let source = config.chat_template(None)?;
        Self::new(
            source,
            config.special_tokens(),
            config.path.display().to_string(),
        )
    }

    /// The template of a Hugging Face checkpoint folder, looked up as transformers does:
    /// `chat_template.jinja`, then `chat_template.json`, then `tokenizer_config.json`. Special
    /// tokens always come from `tokenizer_config.json` when it exists.
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self, ChatTemplateError> {
        let dir = dir.as_ref();
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(TokenizerConfig::from_file(&config_path)?)
        } else {
            None
        };
        let special = config
            .as_ref()
            .map(TokenizerConfig::special_tokens)
            .unwrap_or_default();

        let jinja_path = dir.join("chat_template.jinja");
        if jinja_path.is_file() {
            let source = read_text(&jinja_path)?;
            return Self::new(source, special, jinja_path.display().to_string());
        }
        let json_path = dir.join("chat_template.json");
        if json_path.is_file() {
            let text = read_text(&json_path)?;
            let templates = TokenizerConfig::from_json(&text, &json_path)?;
            let source = templates.chat_template(None)?;
            return Self::new(source, special, json_path.display().to_string());
        }
        match config {
            Some(config) => Self::from_tokenizer_config(&config),
            None => Err(ChatTemplateError::Missing(dir.to_path_buf())),
        }
    }

    /// The template text as the checkpoint wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens the template is rendered with.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special_tokens
    }

    /// Renders `messages` (any `Serialize` type: [`ChatMessage`], JSON values, ...).
    pub fn render<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        self.render_with(
            messages,
            &RenderOptions {
                add_generation_prompt,
                ..RenderOptions::default()
            },
        )
    }

    /// Renders `messages` with tools, documents or extra variables.
    pub fn render_with<M: Serialize>(
        &self,
        messages: &[M],
        options: &RenderOptions,
    ) -> Result<String, ChatTemplateError> {
        let mut context: BTreeMap<String, TemplateValue> = BTreeMap::new();
        let tokens = [
            ("bos_token", &self.special_tokens.bos_token),
            ("eos_token", &self.special_tokens.eos_token),
            ("unk_token", &self.special_tokens.unk_token),
            ("pad_token", &self.special_tokens.pad_token),
        ];
        for (name, token) in tokens {
            if let Some(token) = token {
                context.insert(name.to_string(), TemplateValue::from(token.as_str()));
            }
        }
        context.insert(
            "messages".into(),
            TemplateValue::from(minijinja::value::Serde(messages)),
        );
        context.insert(
            "add_generation_prompt".into(),
            TemplateValue::from(options.add_generation_prompt),
        );
        context.insert(
            "tools".into(),
            options.tools.clone().unwrap_or(TemplateValue::from(())),
        );
        context.insert(
            "documents".into(),
            options.documents.clone().unwrap_or(TemplateValue::from(())),
        );
        for (name, value) in &options.extra {
            context.insert(name.clone(), value.clone());
        }
        let render_error = |source| ChatTemplateError::Render {
            origin: self.origin.clone(),
            source,
        };
        let template = self.env.get_template(TEMPLATE_NAME).map_err(render_error)?;
        template.render(context).map_err(render_error)
    }
}

/// A minijinja environment configured like transformers' jinja2 sandbox.
fn transformers_environment() -> Environment<'static> {
    let mut env = Environment::new();
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false);
    // The builder only fails on clashing custom delimiters; the defaults never clash.
    if let Ok(syntax) = syntax.build() {
        env.set_syntax(syntax);
    }
    env.set_fuel(Some(RENDER_FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", pyjson::tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime::strftime_now);
    env
}

/// `{% generation %}...{% endgeneration %}` (transformers' assistant-mask extension) becomes an
/// always-true `if`, keeping the `-` whitespace markers, so the body renders unchanged.
fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (left, body) = match inner.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", inner),
        };
        let (body, right) = match body.strip_suffix('-') {
            Some(b) => (b, "-"),
            None => (body, ""),
        };
        match body.trim() {
            "generation" => out.push_str(&format!("{{%{left} if true {right}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{left} endif {right}%}}")),
            _ => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

fn raise_exception(message: String) -> Result<TemplateValue, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn render_str(template: &str, context: TemplateValue) -> String {
        let mut env = transformers_environment();
        env.add_template_owned("t", template.to_string()).unwrap();
        env.get_template("t").unwrap().render(context).unwrap()
    }

    #[test]
    fn raise_exception_is_a_render_error_with_the_message() {
        let template = ChatTemplate::new(
            "{{ raise_exception('Conversation roles must alternate') }}",
            SpecialTokens::default(),
            "inline",
        )
        .unwrap();
        let err = template
            .render(&[ChatMessage::user("hi")], false)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Conversation roles must alternate"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_the_origin() {
        let err =
            ChatTemplate::new("{% for x in %}", SpecialTokens::default(), "cfg.json").unwrap_err();
        assert!(matches!(err, ChatTemplateError::Syntax { .. }));
        assert!(err.to_string().contains("cfg.json"), "{err}");
    }

    #[test]
    fn endless_template_runs_out_of_fuel() {
        let template = ChatTemplate::new(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            SpecialTokens::default(),
            "hostile",
        )
        .unwrap();
        assert!(template.render(&[ChatMessage::user("hi")], false).is_err());
    }

    #[test]
    fn generation_tag_renders_its_body() {
        let template = ChatTemplate::new(
            "{% for m in messages %}{%- generation -%} [{{ m.content }}] {%- endgeneration %}{% endfor %}",
            SpecialTokens::default(),
            "inline",
        )
        .unwrap();
        assert_eq!(
            template
                .render(&[ChatMessage::assistant("a")], false)
                .unwrap(),
            "[a]"
        );
    }

    #[test]
    fn pycompat_string_methods() {
        let out = render_str(
            "{{ s.strip().startswith('a') }} {{ s.split(',') | length }} {{ s.strip().upper() }}",
            minijinja::context! { s => "  a,b,c  " },
        );
        // Booleans print the Python way, as in jinja2.
        assert_eq!(out, "True 3 A,B,C");
    }

    #[test]
    fn tokenizer_config_reads_token_objects_and_template_lists() {
        let config = TokenizerConfig::from_json(
            r#"{"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
                "eos_token": "</s>", "pad_token": null,
                "chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]}"#,
            "tokenizer_config.json",
        )
        .unwrap();
        assert_eq!(config.bos_token.as_deref(), Some("<s>"));
        assert_eq!(config.eos_token.as_deref(), Some("</s>"));
        assert_eq!(config.pad_token, None);
        assert_eq!(config.chat_template(None).unwrap(), "A");
        assert_eq!(config.chat_template(Some("tool_use")).unwrap(), "B");
        assert!(matches!(
            config.chat_template(Some("rag")),
            Err(ChatTemplateError::NoSuchTemplate { .. })
        ));
    }

    #[test]
    fn tokenizer_config_without_template_is_missing() {
        let config =
            TokenizerConfig::from_json(r#"{"eos_token": "</s>"}"#, "x/tokenizer_config.json")
                .unwrap();
        let err = ChatTemplate::from_tokenizer_config(&config).unwrap_err();
        assert!(matches!(err, ChatTemplateError::Missing(_)));
        assert!(err.to_string().contains("x/tokenizer_config.json"));
    }

    #[test]
    fn tokenizer_config_with_wrong_types_is_an_error() {
        for bad in [
            r#"{"eos_token": 3}"#,
            r#"{"chat_template": 3}"#,
            r#"{"add_bos_token": "yes"}"#,
            "[1]",
            "{",
        ] {
            let err = TokenizerConfig::from_json(bad, "t.json").unwrap_err();
            assert!(err.to_string().contains("t.json"), "{bad}: {err}");
        }
    }
}
