//! Which point is the guide's baseline, per table: the default configuration on the
//! table's own columns.

use streamer::config::StreamConfig;

/// Whether `c` is the guide's baseline on the encoder table's columns.
pub(super) fn encoder_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().encoder;
    let e = &c.encoder;
    e.preset == d.preset
        && e.hwaccel.enabled == d.hwaccel.enabled
        && e.pipeline.threads == d.pipeline.threads
        && e.pipeline.zero_copy == d.pipeline.zero_copy
}

/// Whether `c` is the guide's baseline on the pipeline table's columns.
pub(super) fn pipeline_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().pipeline;
    let p = &c.pipeline;
    (p.max_queue_size, p.pool_size, p.jpeg_quality, p.format)
        == (d.max_queue_size, d.pool_size, d.jpeg_quality, d.format)
}

/// Whether `c` is the guide's baseline on the RTMP table's columns.
pub(super) fn rtmp_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().rtmp;
    let r = &c.rtmp;
    (r.chunk_size, r.gop_cache, r.ping, r.ping_timeout)
        == (d.chunk_size, d.gop_cache, d.ping, d.ping_timeout)
}
