//! Settings of each stream of several: a configuration file's `[streams.sN]` tables.
//!
//! A file holds the settings every stream shares, and may give stream `sN` (the stream keys
//! of [`stream_key`]) settings of its own in a `[streams.sN]` table, in the same
//! shape as the file itself (nested tables or dotted keys), laid over the shared ones:
//!
//! ```toml
//! [encoder]
//! preset = "veryfast"
//!
//! [streams.s1]
//! encoder.preset = "medium"
//! source = { kind = "file", path = "clip.mp4" }
//! ```

use super::{ConfigError, StreamConfig};

/// The stream key of stream `i` of several (`s0`, `s1`, …).
pub fn stream_key(i: usize) -> String {
    format!("s{i}")
}

/// Each of `n` streams' configuration from a file's text: the shared settings, with stream
/// `sI`'s own `[streams.sI]` table laid over them (not validated: the caller applies its
/// overrides, then validates).
///
/// # Errors
/// The text does not parse, `streams` is not a table of tables, a table names a stream that
/// is not run (`s0` … `s{n-1}`), or a stream's settings are not a configuration (the error
/// names `streams.sI`).
pub fn each_from_toml(text: &str, n: usize) -> Result<Vec<StreamConfig>, ConfigError> {
    let mut shared: toml::Table =
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let own = match shared.remove("streams") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(ConfigError::Parse(format!(
                "streams = {other}: expected tables [streams.s0], [streams.s1], … of each \
                 stream's own settings"
            )));
        }
    };
    for (key, value) in &own {
        let known = (0..n).any(|i| stream_key(i) == *key);
        if !known {
            return Err(ConfigError::Parse(format!(
                "[streams.{key}]: no stream {key} is run (valid: s0..=s{})",
                n.saturating_sub(1)
            )));
        }
        if !value.is_table() {
            return Err(ConfigError::Parse(format!(
                "streams.{key} = {value}: expected a table of that stream's settings"
            )));
        }
    }
    let base = StreamConfig::from_toml(&shared.to_string())?;
    (0..n)
        .map(|i| {
            let key = stream_key(i);
            let Some(toml::Value::Table(over)) = own.get(&key) else {
                return Ok(base.clone());
            };
            let mut table = shared.clone();
            lay_over(&mut table, over);
            StreamConfig::from_toml(&table.to_string())
                .map_err(|e| ConfigError::Parse(format!("[streams.{key}]: {e}")))
        })
        .collect()
}

/// Lays `over` on `base`: a table into a table key by key, any other value in place.
fn lay_over(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => lay_over(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}
