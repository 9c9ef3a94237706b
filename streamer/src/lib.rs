//! stream-manager: a real live stream, stage by stage.
//!
//! A synthetic scene ([`source`]) is drawn straight into YUV420P frames, encoded to H.264 by
//! FFmpeg's libx264 ([`encode`]) and written to an output ([`output`]). Every stage marks the
//! optimization guide's monitoring points on a [`probe::Probe`] it is handed; [`stream`] wires
//! the stages together for one [`config::StreamConfig`].
//!
//! ```no_run
//! use streamer::{config::StreamConfig, output::Output, probe::NoProbe, stream::{Pacing, Stream}};
//! let cfg = StreamConfig::default();
//! let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe)?;
//! stream.run(300, Pacing::Max)?;
//! let summary = stream.finish()?;
//! println!("{} packets, {:.0} kbit/s", summary.counters.packets, summary.bitrate_kbps);
//! # Ok::<(), streamer::stream::StreamError>(())
//! ```

pub mod adapt;
pub mod clock;
pub mod config;
pub mod core;
pub mod diagnose;
pub mod encode;
pub mod frame;
pub mod hwdevice;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod render;
pub mod rtmp;
pub mod source;
pub mod stream;
pub mod streams;

/// Hits ÷ (hits + misses), 0–1 (0 when nothing was looked up): every cache's hit rate.
pub fn hit_rate(hits: u64, misses: u64) -> f64 {
    let all = hits + misses;
    if all == 0 {
        0.0
    } else {
        hits as f64 / all as f64
    }
}
