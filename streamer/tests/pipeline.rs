//! The frame pipeline end to end: every frame accounted for under overload, per drop policy,
//! and the jpeg/png formats reaching the encoder. (Zero allocations per frame: `allocations.rs`,
//! alone in its process.)

use streamer::config::{DropPolicy, FrameFormat, Preset, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream};

fn small() -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 320;
    cfg.core.viewport.height = 180;
    cfg.encoder.preset = Preset::Ultrafast;
    cfg.encoder.pipeline.threads = 1;
    cfg
}

/// A realtime stream whose encoder cannot keep up (medium preset, 720p, one thread, one
/// worker): every frame the renderer made is either sent or dropped under a named reason.
fn overload(policy: DropPolicy, format: FrameFormat) -> (u64, streamer::pipeline::Drops, u64) {
    let mut cfg = StreamConfig::default();
    cfg.encoder.preset = Preset::Medium;
    cfg.encoder.pipeline.threads = 1;
    cfg.core.viewport.fps = 120;
    cfg.pipeline.pool_size = 1;
    cfg.pipeline.max_queue_size = 4;
    cfg.pipeline.drop_policy = policy;
    cfg.pipeline.format = format;
    cfg.encoder.zerolatency = true;
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    let slots = 240;
    stream.run(slots, Pacing::Realtime).unwrap();
    let summary = stream.finish().unwrap();
    let drops = summary.pipeline.drops;
    assert_eq!(
        summary.counters.packets + drops.total(),
        slots,
        "{policy:?}: {} sent + {drops:?} must be every slot",
        summary.counters.packets
    );
    (summary.counters.packets, drops, slots)
}

#[test]
fn each_drop_policy_drops_what_it_says_and_counts_every_frame() {
    let (_, oldest, _) = overload(DropPolicy::Oldest, FrameFormat::Raw);
    assert!(
        oldest.queue_full > 0,
        "drop-oldest under overload: {oldest:?}"
    );
    let (_, newest, _) = overload(DropPolicy::Newest, FrameFormat::Raw);
    assert!(
        newest.queue_full > 0,
        "drop-newest under overload: {newest:?}"
    );
    // Blocking never drops in the queue; the renderer falls behind instead, and that is counted.
    let (_, block, _) = overload(DropPolicy::Block, FrameFormat::Raw);
    assert_eq!(block.queue_full, 0, "{block:?}");
    assert!(block.behind + block.stale + block.late > 0, "{block:?}");
}

#[test]
fn jpeg_and_png_frames_reach_the_encoder() {
    for format in [FrameFormat::Jpeg, FrameFormat::Png] {
        let mut cfg = small();
        cfg.pipeline.format = format;
        let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
        stream.run(30, Pacing::Max).unwrap();
        let s = stream.finish().unwrap();
        assert_eq!(s.counters.packets, 30, "{format:?}");
        assert!(
            s.pipeline.format_bytes > 30 * 1000,
            "{format:?}: {:?}",
            s.pipeline
        );
    }
}

#[test]
fn smart_worker_scaling_grows_the_pool_for_slow_conversion_and_keeps_it_small_when_idle() {
    use streamer::adapt::AdaptChange;
    let workers = |format: FrameFormat| {
        let mut cfg = small();
        cfg.core.viewport.width = 1280;
        cfg.core.viewport.height = 720;
        cfg.core.viewport.fps = 60;
        cfg.pipeline.format = format;
        cfg.pipeline.pool_size = 4;
        cfg.adaptive.workers.enabled = true;
        cfg.adaptive.workers.min = 1;
        let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
        stream.run(90, Pacing::Realtime).unwrap();
        let summary = stream.finish().unwrap();
        let changes: Vec<(u32, u32)> = summary
            .adaptation
            .iter()
            .filter_map(|e| match e.change {
                AdaptChange::Workers { from, to } => Some((from, to)),
                _ => None,
            })
            .collect();
        (changes, summary.adaptation)
    };
    // PNG at 720p takes far longer than a 16.7 ms frame interval: the pool grows, one at a
    // time, with the signal that caused each step.
    let (grown, events) = workers(FrameFormat::Png);
    assert!(grown.first() == Some(&(1, 2)), "{events:#?}");
    assert!(grown.windows(2).all(|w| w[1].0 == w[0].1), "{events:#?}");
    assert!(events.iter().all(|e| !e.signal.is_empty()), "{events:#?}");
    // Raw frames need no conversion: one worker keeps up, nothing changes.
    let (idle, events) = workers(FrameFormat::Raw);
    assert!(idle.is_empty(), "{events:#?}");
}
