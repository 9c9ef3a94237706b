//! `StreamConfig`: every option of the optimization guide in one serde (TOML) type.
//!
//! Field names are the guide's own (`maxLatency`, `zeroCopy`, `chunk_size`, …) so a scenario
//! file or a `--set` override reads like the guide. `Default` is the guide's baseline
//! configuration; [`StreamConfig::validate`] rejects every out-of-range value with the field's
//! dotted path, the value and the valid range.
//!
//! Options the guide leaves open are added where the path needs them and documented on the
//! field: the frame rate (`core.viewport.fps`), the encoder's GOP length, rate control and
//! `zerolatency` tune, and `hwaccel.fallback`.
//!
//! Each section's types, defaults and range checks live in their own file (`core`,
//! `renderer`, `encoder`, `pipeline`, `rtmp`, and `adaptive`, which is beyond the guide), and `validate` calls each section's check in
//! that order; dotted-path overrides are in `overrides`. Every type is re-exported here, so `streamer::config::X` names them all.

mod adaptive;
mod core;
mod each;
mod encoder;
mod overrides;
mod pipeline;
mod renderer;
mod rtmp;
mod source;
#[cfg(test)]
mod tests;

pub use self::core::{
    AssetsConfig, CacheStrategy, CompositionConfig, CoreConfig, LayoutConfig, Margin, OptimizeFor,
    PreloadStrategy, ViewportConfig,
};
pub use adaptive::{AdaptiveBitrate, AdaptiveConfig, AdaptiveQuality, AdaptiveWorkers};
pub use each::{each_from_toml, stream_key};
pub use encoder::{
    EncoderConfig, EncoderPipeline, HwAccelConfig, HwDevice, Preset, RateControl, RateMode,
    X264_CPU_FLAGS,
};
pub use overrides::parse_literal;
pub use pipeline::{DropPolicy, FrameFormat, PipelineConfig};
pub use renderer::{
    Api, FilterMode, RenderBackend, RenderMemory, RenderPerformance, RenderQuality, RendererConfig,
    TextureQuality,
};
pub use rtmp::RtmpConfig;
pub use source::{SourceConfig, SourceKind};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Text that is not the value asked for (a command-line argument, a URL, a pacing): what was
/// given and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The whole stream's configuration: the guide's five config interfaces, and adaptation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Where the pictures come from (`SourceConfig`; beyond the guide).
    pub source: SourceConfig,
    /// Viewport, assets, layout and composition (`CoreConfig`).
    pub core: CoreConfig,
    /// The render stage (`RendererConfig`).
    pub renderer: RendererConfig,
    /// The video encoder (`EncoderConfig`).
    pub encoder: EncoderConfig,
    /// The frame pipeline between render and encode (`PipelineConfig`).
    pub pipeline: PipelineConfig,
    /// The RTMP server (`RTMPConfig`).
    pub rtmp: RtmpConfig,
    /// Adaptation to the network (beyond the guide; off by default).
    pub adaptive: AdaptiveConfig,
}

/// One out-of-range value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path of the field, e.g. `encoder.pipeline.threads`.
    pub field: String,
    /// The value given.
    pub value: String,
    /// What would be valid.
    pub expected: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} = {} (expected {})",
            self.field, self.value, self.expected
        )
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// One or more values out of range.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Invalid>),
    /// A file or override that does not parse as a configuration.
    #[error("{0}")]
    Parse(String),
}

impl ConfigError {
    /// The out-of-range values, if that is what this error is.
    pub fn invalid(&self) -> &[Invalid] {
        match self {
            ConfigError::Invalid(v) => v,
            ConfigError::Parse(_) => &[],
        }
    }
}

/// Collects range checks; each failed check names the field.
struct Checker(Vec<Invalid>);

impl Checker {
    fn range(&mut self, field: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.fail(field, value, format!("{min}..={max}"));
        }
    }

    fn fail(&mut self, field: &str, value: impl fmt::Display, expected: impl Into<String>) {
        self.0.push(Invalid {
            field: field.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        });
    }
}

impl StreamConfig {
    /// Checks every value against its valid range.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every bad field with its value and valid range.
    ///
    /// # Examples
    /// ```
    /// let mut cfg = streamer::config::StreamConfig::default();
    /// cfg.encoder.pipeline.threads = 0;
    /// let err = cfg.validate().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid encoder.pipeline.threads = 0 (expected 1..=64)");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut c = Checker(Vec::new());
        self.source.check(&mut c);
        self.core.check(&mut c);
        self.renderer.check(&mut c);
        self.encoder.check(&mut c);
        self.pipeline.check(&mut c);
        self.rtmp.check(&mut c);
        self.adaptive.check(
            &mut c,
            self.encoder.rate_control.mode,
            self.encoder.rate_control.bitrate_kbps,
            self.pipeline.pool_size,
        );
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(c.0))
        }
    }

    /// Reads a (partial) configuration from TOML text; absent fields take their defaults.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and the field for text that is not a configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let old = toml::from_str::<toml::Table>(text).is_ok_and(|t| {
            t.get("adaptive")
                .and_then(toml::Value::as_table)
                .is_some_and(|a| a.contains_key("enabled"))
        });
        if old {
            adaptive::deprecated_switch();
        }
        Ok(cfg)
    }

    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// The file cannot be read, does not parse, or holds out-of-range values.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
        let cfg = Self::from_toml(&text)
            .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?;
        cfg.validate()?;
        Ok(cfg)
    }
}
