//! Dotted-path overrides: a configuration as a TOML table, one field set by its path
//! (`encoder.preset` = `"veryfast"`), and `path=value` as the command line gives it.

use super::{ConfigError, StreamConfig};

impl StreamConfig {
    /// This configuration as a TOML table (every field, defaults included).
    pub fn to_table(&self) -> toml::Table {
        toml::Table::try_from(self).expect("StreamConfig always serializes to a table")
    }

    /// Sets one field by its dotted path, e.g. `encoder.preset` = `"veryfast"`.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] when the path names no field or the value has the wrong type.
    /// The result is not validated; call [`StreamConfig::validate`] after the last override.
    pub fn set(&mut self, path: &str, value: toml::Value) -> Result<(), ConfigError> {
        let path = if path == super::adaptive::OLD_BITRATE_SWITCH {
            super::adaptive::deprecated_switch();
            super::adaptive::BITRATE_SWITCH
        } else {
            path
        };
        let mut table = self.to_table();
        set_path(&mut table, path, value)?;
        *self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(format!("{path}: {}", e.message())))?;
        Ok(())
    }

    /// Applies a `path=value` override as the command line gives it. The value is read as a
    /// TOML literal (`3`, `true`, `["AVX2"]`) and otherwise taken as a string (`veryfast`).
    ///
    /// # Errors
    /// As [`StreamConfig::set`], or when there is no `=`.
    pub fn apply_override(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (path, raw) = spec.split_once('=').ok_or_else(|| {
            ConfigError::Parse(format!("override {spec:?} is not of the form path=value"))
        })?;
        self.set(path.trim(), parse_literal(raw.trim()))
    }
}

/// Reads a command-line value as a TOML literal, or as a plain string when it is not one.
pub fn parse_literal(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = path.split('.').collect();
    let (leaf, parents) = parts.split_last().expect("split yields at least one part");
    let mut here = table;
    for (i, part) in parents.iter().enumerate() {
        let known: Vec<String> = here.keys().cloned().collect();
        here = match here.get_mut(*part) {
            Some(toml::Value::Table(t)) => t,
            _ => {
                return Err(ConfigError::Parse(format!(
                    "unknown config path {path:?}: {:?} has no section {part:?} (sections: {})",
                    if i == 0 {
                        "(top)".to_string()
                    } else {
                        parents[..i].join(".")
                    },
                    known.join(", ")
                )));
            }
        };
    }
    // A table merges into the section it names (`rtmp = { ping = 5, ping_timeout = 10 }` sets
    // two fields together). A leaf that is absent is an unset optional field (or a typo, which
    // deserializing rejects with the list of valid names).
    match (here.get_mut(*leaf), value) {
        (Some(toml::Value::Table(section)), toml::Value::Table(fields)) => {
            for (k, v) in fields {
                set_path(section, &k, v)?;
            }
        }
        (_, value) => {
            here.insert((*leaf).to_string(), value);
        }
    }
    Ok(())
}
