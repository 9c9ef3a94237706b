//! The results as flat CSV (`latest.csv`): the columns are listed in the module above.

use super::model::Results;
use std::collections::BTreeMap;
use streamer::probe::SPANS;

impl Results {
    /// The results as flat CSV.
    ///
    /// # Errors
    /// Only if CSV encoding fails.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let axes: Vec<String> = self
            .points
            .first()
            .map(|p| p.axes.iter().map(|a| a.path.clone()).collect())
            .unwrap_or_default();
        let spans: Vec<&str> = SPANS
            .iter()
            .map(|s| s.name)
            .filter(|n| self.points.iter().any(|p| p.spans.contains_key(*n)))
            .collect();
        const STATS: [&str; 7] = [
            "count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
        ];
        let config_cols: Vec<String> = self
            .points
            .first()
            .map(|p| {
                flatten(&p.config.to_table())
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = vec!["suite".into(), "point".into()];
        header.extend(axes.iter().cloned());
        header.extend(
            [
                "fps",
                "fps_min",
                "fps_max",
                "cpu_percent",
                "rss_bytes",
                "dropped_frames",
                "bitrate_kbps",
                "encoder",
                "notes",
                "players",
                "sent_kbps",
                "delivered_kbps",
                "players_realtime",
                "late_join_ms",
                "server_dropped",
            ]
            .map(String::from),
        );
        for s in &spans {
            header.extend(STATS.iter().map(|st| format!("{s}.{st}")));
        }
        header.extend(config_cols.iter().map(|c| format!("config.{c}")));
        w.write_record(&header)?;
        for p in &self.points {
            let mut row: Vec<String> = vec![self.suite.clone(), p.id.clone()];
            row.extend(axes.iter().map(|a| {
                p.axes
                    .iter()
                    .find(|x| &x.path == a)
                    .map(|x| x.value.clone())
                    .unwrap_or_default()
            }));
            row.extend([
                format!("{:.2}", p.fps),
                format!("{:.2}", p.fps_min),
                format!("{:.2}", p.fps_max),
                format!("{:.1}", p.cpu_percent),
                p.rss_bytes.to_string(),
                p.dropped_frames.to_string(),
                format!("{:.1}", p.bitrate_kbps),
                p.encoder.clone(),
                p.notes.join("; "),
            ]);
            match &p.network {
                Some(n) => row.extend([
                    n.players.to_string(),
                    format!("{:.1}", n.sent_kbps),
                    format!("{:.1}", n.delivered_kbps),
                    n.players_realtime.to_string(),
                    n.late_join_ms.map_or(String::new(), |j| format!("{j:.1}")),
                    n.server_dropped.to_string(),
                ]),
                None => row.extend(std::iter::repeat_n(String::new(), 6)),
            }
            for s in &spans {
                match p.spans.get(*s) {
                    Some(st) => row.extend(
                        [
                            st.count as f64,
                            st.p50_us,
                            st.p90_us,
                            st.p99_us,
                            st.p999_us,
                            st.max_us,
                            st.mean_us,
                        ]
                        .iter()
                        .map(|v| format!("{v}")),
                    ),
                    None => row.extend(STATS.iter().map(|_| String::new())),
                }
            }
            let flat: BTreeMap<String, String> =
                flatten(&p.config.to_table()).into_iter().collect();
            row.extend(
                config_cols
                    .iter()
                    .map(|c| flat.get(c).cloned().unwrap_or_default()),
            );
            w.write_record(&row)?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// Every leaf of a TOML table as `(dotted.path, value)`.
fn flatten(table: &toml::Table) -> Vec<(String, String)> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&path, inner, out),
                other => out.push((path, crate::sweep::show(other))),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamer::config::StreamConfig;

    #[test]
    fn flatten_names_every_leaf() {
        let flat = flatten(&StreamConfig::default().to_table());
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"encoder.preset"));
        assert!(keys.contains(&"encoder.pipeline.zeroCopy"));
        assert!(keys.contains(&"rtmp.chunk_size"));
    }
}
