//! The rope part of `config.json`: `rope_theta` + `rope_scaling` (transformers 4) or
//! `rope_parameters` (transformers 5), and our static NTK-aware `{"rope_type": "ntk", "alpha"}`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{invalid, Config, ConfigError};

/// How the rope frequencies are stretched for long contexts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Position interpolation: inverse frequencies divided by `factor`.
    Linear {
        factor: f64,
    },
    /// transformers' dynamic NTK: the base grows with the sequence length past
    /// `max_position_embeddings`.
    Dynamic {
        factor: f64,
    },
    /// Static NTK-aware: base multiplied by `alpha^(d/(d-2))` at every length.
    NtkAlpha {
        alpha: f64,
    },
}

/// `rope_scaling` (4 dialect) or `rope_parameters` (5 dialect).
#[derive(Debug, Clone, Deserialize)]
pub struct RopeParams {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub rope_type: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub alpha: Option<f64>,
    /// transformers fills this with `max_position_embeddings` for dynamic scaling.
    pub original_max_position_embeddings: Option<usize>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Config {
    /// The rope parameters block of whichever dialect the file uses.
    fn rope_block(&self) -> Option<&RopeParams> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    /// Rope base: `rope_parameters.rope_theta` (5) or `rope_theta` (4); default 10000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }

    /// The rope scaling kind, validated.
    pub fn rope_scaling(&self) -> Result<RopeScaling, ConfigError> {
        let field = if self.rope_parameters.is_some() {
            "rope_parameters"
        } else {
            "rope_scaling"
        };
        let Some(p) = self.rope_block() else {
            return Ok(RopeScaling::None);
        };
        if let Some((k, v)) = p.extra.iter().next() {
            return Err(ConfigError::UnknownField {
                field: format!("{field}.{k}"),
                value: v.to_string(),
            });
        }
        let kind = p
            .rope_type
            .as_deref()
            .or(p.type_.as_deref())
            .unwrap_or("default");
        let factor = |name: &str| -> Result<f64, ConfigError> {
            match p.factor {
                Some(f) if f.is_finite() && f >= 1.0 => Ok(f),
                Some(f) => Err(invalid(
                    &format!("{field}.factor"),
                    format!("{name} scaling needs factor >= 1, got {f}"),
                )),
                None => Err(invalid(
                    &format!("{field}.factor"),
                    format!("{name} scaling needs a factor"),
                )),
            }
        };
        let reject_unused =
            |name: &str, used_factor: bool, used_alpha: bool| -> Result<(), ConfigError> {
                if !used_factor && p.factor.is_some() {
                    return Err(invalid(
                        &format!("{field}.factor"),
                        format!("not used by rope type {name:?}"),
                    ));
                }
                if !used_alpha && p.alpha.is_some() {
                    return Err(invalid(
                        &format!("{field}.alpha"),
                        format!("not used by rope type {name:?}"),
                    ));
                }
                if let Some(o) = p.original_max_position_embeddings {
                    if kind != "dynamic" || o != self.max_position_embeddings() {
                        return Err(invalid(
                        &format!("{field}.original_max_position_embeddings"),
                        "only supported for dynamic scaling and equal to max_position_embeddings",
                    ));
                    }
                }
                Ok(())
            };
        match kind {
            "default" => {
                reject_unused(kind, false, false)?;
                Ok(RopeScaling::None)
            }
            "linear" => {
                reject_unused(kind, true, false)?;
                Ok(RopeScaling::Linear {
                    factor: factor(kind)?,
                })
            }
            "dynamic" => {
                reject_unused(kind, true, false)?;
                Ok(RopeScaling::Dynamic {
                    factor: factor(kind)?,
                })
            }
            "ntk" => {
                reject_unused(kind, false, true)?;
                match p.alpha {
                    Some(a) if a.is_finite() && a >= 1.0 => Ok(RopeScaling::NtkAlpha { alpha: a }),
                    other => Err(invalid(
                        &format!("{field}.alpha"),
                        format!("ntk scaling needs alpha >= 1, got {other:?}"),
                    )),
                }
            }
            other => Err(invalid(
                &format!("{field}.rope_type"),
                format!(
                    "unsupported rope scaling {other:?} (supported: default, linear, dynamic, ntk)"
                ),
            )),
        }
    }
}
