//! Sweep expansion: a base configuration and axes (dotted config path → values) become run
//! points, the cartesian product, first axis varying slowest.
//!
//! One axis is not a config path: `players`, the number of players attached to the embedded
//! RTMP server (0 = no server: encode only).

use streamer::config::{ConfigError, StreamConfig};

/// One axis of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted config path, e.g. `encoder.preset`.
    pub path: String,
    /// The values it takes, in order.
    pub values: Vec<toml::Value>,
}

/// The axis that sets the player count instead of a config field.
pub const PLAYERS: &str = "players";

/// Most players a point may attach.
pub const MAX_PLAYERS: u32 = 2000;

/// One point of a sweep: the configuration to run and the axis values that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPoint {
    /// `(path, value)` for each axis, in axis order.
    pub axes: Vec<(String, String)>,
    pub config: StreamConfig,
    /// Players attached to the embedded RTMP server (0: no server, encode only).
    pub players: u32,
}

/// Reads a `players` value.
///
/// # Errors
/// A [`ConfigError`] naming the value and the valid range.
pub fn players(value: &toml::Value) -> Result<u32, ConfigError> {
    match value.as_integer() {
        Some(n) if (0..=i64::from(MAX_PLAYERS)).contains(&n) => Ok(n as u32),
        _ => Err(ConfigError::Invalid(vec![streamer::config::Invalid {
            field: PLAYERS.into(),
            value: show(value),
            expected: format!("0..={MAX_PLAYERS}"),
        }])),
    }
}

impl RunPoint {
    /// A stable, readable id: `encoder.preset=ultrafast, encoder.pipeline.threads=2`.
    pub fn id(&self) -> String {
        if self.axes.is_empty() {
            return "base".to_string();
        }
        self.axes
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The value this point gives `path`, if `path` is one of its axes.
    pub fn axis(&self, path: &str) -> Option<&str> {
        self.axes
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }
}

/// Which axis value broke a point, and how.
#[derive(Debug)]
pub struct SweepError {
    /// Index of the axis whose value was being applied or that the invalid field belongs to.
    pub axis: usize,
    /// Index of that axis's value.
    pub value: usize,
    pub error: ConfigError,
}

/// A value as the report shows it: strings bare, everything else as TOML writes it.
pub fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Number of points `axes` expand to.
pub fn count(axes: &[Axis]) -> usize {
    axes.iter().map(|a| a.values.len()).product()
}

/// Expands `axes` over `base` into every point, validating each.
///
/// # Errors
/// The first point whose configuration cannot be built or is out of range.
pub fn expand(
    base: &StreamConfig,
    base_players: u32,
    axes: &[Axis],
) -> Result<Vec<RunPoint>, SweepError> {
    let total = count(axes);
    let mut points = Vec::with_capacity(total);
    for n in 0..total {
        // Mixed-radix digits of n, last axis fastest.
        let mut rest = n;
        let mut picks = vec![0; axes.len()];
        for (i, axis) in axes.iter().enumerate().rev() {
            picks[i] = rest % axis.values.len();
            rest /= axis.values.len();
        }
        let mut config = base.clone();
        let mut players = base_players;
        let mut labels = Vec::with_capacity(axes.len());
        for (i, axis) in axes.iter().enumerate() {
            let value = &axis.values[picks[i]];
            let set = if axis.path == PLAYERS {
                self::players(value).map(|n| players = n)
            } else {
                config.set(&axis.path, value.clone())
            };
            set.map_err(|error| SweepError {
                axis: i,
                value: picks[i],
                error,
            })?;
            labels.push((axis.path.clone(), show(value)));
        }
        if let Err(error) = config.validate() {
            let field = error
                .invalid()
                .first()
                .map(|b| b.field.clone())
                .unwrap_or_default();
            let axis = axes
                .iter()
                .position(|a| a.path == field)
                .unwrap_or(axes.len() - 1);
            return Err(SweepError {
                axis,
                value: picks[axis],
                error,
            });
        }
        points.push(RunPoint {
            axes: labels,
            config,
            players,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(path: &str, values: &[toml::Value]) -> Axis {
        Axis {
            path: path.into(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn cartesian_order_and_count() {
        let s = |x: &str| toml::Value::String(x.into());
        let axes = [
            axis(
                "encoder.preset",
                &[s("ultrafast"), s("veryfast"), s("medium")],
            ),
            axis("encoder.pipeline.threads", &[1.into(), 2.into()]),
            axis("encoder.pipeline.zeroCopy", &[true.into(), false.into()]),
        ];
        let points = expand(&StreamConfig::default(), 0, &axes).unwrap();
        assert_eq!(points.len(), 12);
        assert_eq!(count(&axes), 12);
        assert_eq!(
            points[0].id(),
            "encoder.preset=ultrafast, encoder.pipeline.threads=1, encoder.pipeline.zeroCopy=true"
        );
        assert_eq!(points[1].axis("encoder.pipeline.zeroCopy"), Some("false"));
        assert_eq!(points[11].config.encoder.pipeline.threads, 2);
        assert_eq!(points[11].axis("encoder.preset"), Some("medium"));
    }

    #[test]
    fn no_axes_is_one_base_point() {
        let points = expand(&StreamConfig::default(), 0, &[]).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].id(), "base");
    }

    #[test]
    fn out_of_range_values_name_their_axis() {
        let axes = [axis("encoder.pipeline.threads", &[2.into(), 0.into()])];
        let err = expand(&StreamConfig::default(), 0, &axes).unwrap_err();
        assert_eq!((err.axis, err.value), (0, 1));
        assert!(err.error.to_string().contains("1..=64"));
    }
}
