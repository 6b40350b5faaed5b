//! The `tojson` filter as transformers defines it: Python's `json.dumps`, not jinja2's
//! HTML-safe default.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value as TemplateValue};

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// Largest `indent` accepted (templates use 2 or 4).
const MAX_INDENT: i64 = 64;

/// The `tojson` filter transformers installs: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, with those four keyword arguments.
pub(super) fn tojson(value: TemplateValue, kwargs: Kwargs) -> Result<TemplateValue, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let indent_arg: Option<TemplateValue> = kwargs.get("indent")?;
    let separators_arg: Option<TemplateValue> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;

    let indent = match indent_arg {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            // Templates are untrusted: a huge indent must not become a huge allocation.
            (Some(n), _) if n > MAX_INDENT => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent is over 64",
                ))
            }
            (Some(n), _) => Some(" ".repeat(usize::try_from(n).unwrap_or(0))),
            (None, Some(s)) if s.len() > MAX_INDENT as usize => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent is over 64",
                ))
            }
            (None, Some(s)) => Some(s.to_string()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an int or a string",
                ))
            }
        },
    };
    let separators = match separators_arg {
        Some(v) if !v.is_none() => {
            let item = v.get_item_by_index(0)?;
            let key = v.get_item_by_index(1)?;
            match (item.as_str(), key.as_str()) {
                (Some(i), Some(k)) => (i.to_string(), k.to_string()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ))
                }
            }
        }
        // Python drops the space after "," when indenting, so lines do not end in a space.
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let writer = JsonWriter {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
        indent,
        item_separator: separators.0,
        key_separator: separators.1,
    };
    let mut out = String::new();
    writer.write(&value, 0, &mut out)?;
    Ok(TemplateValue::from_safe_string(out))
}

/// Python `json.dumps` formatting.
struct JsonWriter {
    ensure_ascii: bool,
    sort_keys: bool,
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
}

impl JsonWriter {
    fn write(&self, value: &TemplateValue, depth: usize, out: &mut String) -> Result<(), Error> {
        match value.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if value.is_integer() {
                    out.push_str(&value.to_string());
                } else {
                    let f = f64::try_from(value.clone())?;
                    out.push_str(&python_float_repr(f));
                }
            }
            ValueKind::String => self.write_str(value.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<TemplateValue> = value.try_iter()?.collect();
                self.write_container('[', ']', items.len(), depth, out, |i, depth, out| {
                    self.write(&items[i], depth, out)
                })?;
            }
            ValueKind::Map => {
                let mut pairs: Vec<(String, TemplateValue)> = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = match key.kind() {
                        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                        ValueKind::Number | ValueKind::Bool | ValueKind::None => {
                            let mut k = String::new();
                            self.write(&key, depth, &mut k)?;
                            k
                        }
                        kind => return Err(invalid(format!("tojson: a {kind} key"))),
                    };
                    pairs.push((key, item));
                }
                if self.sort_keys {
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container('{', '}', pairs.len(), depth, out, |i, depth, out| {
                    self.write_str(&pairs[i].0, out);
                    out.push_str(&self.key_separator);
                    self.write(&pairs[i].1, depth, out)
                })?;
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a value of kind {kind} is not JSON serializable"),
                ))
            }
        }
        Ok(())
    }

    fn write_container(
        &self,
        open: char,
        close: char,
        len: usize,
        depth: usize,
        out: &mut String,
        mut item: impl FnMut(usize, usize, &mut String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if len == 0 {
            out.push(close);
            return Ok(());
        }
        for i in 0..len {
            if i > 0 {
                out.push_str(&self.item_separator);
            }
            if let Some(indent) = &self.indent {
                out.push('\n');
                out.push_str(&indent.repeat(depth + 1));
            }
            item(i, depth + 1, out)?;
        }
        if let Some(indent) = &self.indent {
            out.push('\n');
            out.push_str(&indent.repeat(depth));
        }
        out.push(close);
        Ok(())
    }

    fn write_str(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents -4..=15,
/// otherwise `d.ddde+XX`.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: "1.5e-7", "-1e16", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let fixed = format!("{f}");
        if fixed.contains('.') {
            fixed
        } else {
            format!("{fixed}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn render_str(template: &str, context: TemplateValue) -> String {
        let mut env = super::super::transformers_environment();
        env.add_template_owned("t", template.to_string()).unwrap();
        env.get_template("t").unwrap().render(context).unwrap()
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let value: TemplateValue = serde_json::from_str(
            r#"{"b": [1, 2.5, null, true], "a": "x\"y\u00e9\n", "c": {}, "d": 1e16}"#,
        )
        .unwrap();
        let ctx = minijinja::context! { v => value };
        assert_eq!(
            render_str("{{ v | tojson }}", ctx.clone()),
            r#"{"b": [1, 2.5, null, true], "a": "x\"yé\n", "c": {}, "d": 1e+16}"#
        );
        assert_eq!(
            render_str("{{ v.b | tojson(indent=2) }}", ctx.clone()),
            "[\n  1,\n  2.5,\n  null,\n  true\n]"
        );
        assert_eq!(
            render_str(
                "{{ v | tojson(sort_keys=true, ensure_ascii=true, separators=(',', ':')) }}",
                ctx
            ),
            r#"{"a":"x\"y\u00e9\n","b":[1,2.5,null,true],"c":{},"d":1e+16}"#
        );
    }

    #[test]
    fn python_float_repr_cases() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e20, "-2.5e+20"),
        ] {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn huge_indent_is_an_error_not_an_allocation() {
        let mut env = super::super::transformers_environment();
        env.add_template_owned("t", "{{ [1] | tojson(indent=100000000) }}".to_string())
            .unwrap();
        assert!(env.get_template("t").unwrap().render(()).is_err());
    }
}
