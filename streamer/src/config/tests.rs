//! Tests of the configuration: defaults, every range check's message, enum names, overrides
//! and TOML round trips.

use super::*;
use serde::{Deserialize, Serialize};
use std::fmt;

#[test]
fn defaults_are_the_guides_baseline() {
    let c = StreamConfig::default();
    assert_eq!(c.encoder.preset, Preset::Ultrafast);
    assert!(!c.encoder.hwaccel.enabled);
    assert_eq!(c.encoder.pipeline.max_latency, 1000);
    assert_eq!(c.encoder.pipeline.drop_threshold, 500);
    assert!(c.encoder.pipeline.zero_copy);
    assert_eq!(c.encoder.pipeline.threads, 2);
    assert_eq!(c.pipeline.max_queue_size, 30);
    assert_eq!(c.pipeline.pool_size, 4);
    assert_eq!(c.pipeline.jpeg_quality, 85);
    assert_eq!(c.pipeline.format, FrameFormat::Raw);
    assert_eq!(c.rtmp.chunk_size, 60000);
    assert!(c.rtmp.gop_cache);
    assert_eq!(c.rtmp.ping, 30);
    assert_eq!(c.rtmp.ping_timeout, 60);
    assert_eq!((c.core.viewport.width, c.core.viewport.height), (1280, 720));
    assert_eq!(c.core.viewport.fps, 30);
    c.validate().expect("defaults are valid");
}

/// Every range-checked field, a bad value for it, and the range the error must state.
const BAD: &[(&str, &str, &str)] = &[
    ("core.viewport.width", "15", "16..=7680"),
    ("core.viewport.width", "1281", "16..=7680"),
    ("core.viewport.height", "4322", "16..=4320"),
    ("core.viewport.fps", "0", "1..=240"),
    ("core.viewport.gridSize", "0", "1..=720"),
    ("core.viewport.safeAreaMargin.x", "640", "0..=639"),
    ("core.viewport.safeAreaMargin.y", "400", "0..=359"),
    ("core.assets.cacheSize", "0", "1..="),
    ("core.assets.cacheLifetime", "0", "1..=86400"),
    ("core.layout.maxLayers", "0", "1..=256"),
    ("core.layout.updateInterval", "0", "1..=60000"),
    ("core.composition.threadPool", "65", "1..=64"),
    ("core.composition.batchSize", "0", "1..=256"),
    ("renderer.performance.maxConcurrent", "0", "1..=16"),
    ("renderer.performance.batchSize", "0", "1..=1024"),
    ("renderer.performance.priorityLevels", "17", "1..=16"),
    ("renderer.memory.textureCache", "0", "1..=65536"),
    ("renderer.memory.geometryCache", "0", "1..=65536"),
    ("renderer.memory.shaderCache", "0", "1..=65536"),
    ("encoder.gop", "0", "1..=1000"),
    ("encoder.pipeline.threads", "0", "1..=64"),
    ("encoder.pipeline.maxLatency", "0", "1..=60000"),
    ("encoder.pipeline.dropThreshold", "1001", "1..=1000"),
    (
        "encoder.pipeline.cpuFlags",
        "[\"AVX9\"]",
        "x264 CPU flag names",
    ),
    ("encoder.hwaccel.enabled", "true", "one of nvidia, qsv"),
    ("encoder.rateControl.crf", "52", "0..=51"),
    ("encoder.rateControl.bitrateKbps", "1", "16..=200000"),
    ("encoder.rateControl.vbvBufferKbits", "1", "16..=400000"),
    ("pipeline.maxQueueSize", "0", "1..=1000"),
    ("pipeline.poolSize", "0", "1..=64"),
    ("pipeline.quality", "101", "1..=100"),
    ("rtmp.chunk_size", "127", "128..=16777215"),
    ("rtmp.ping", "0", "1..=3600"),
    ("rtmp.ping_timeout", "29", "30..=7200"),
    ("rtmp.handshake_timeout", "0", "1..=600"),
    ("rtmp.max_connections", "0", "1..=100000"),
    ("rtmp.drain_timeout", "601", "0..=600"),
    ("rtmp.player_queue", "1", "2..=10000"),
    ("rtmp.fanout_threads", "0", "1..=64"),
    ("rtmp.publish_keys", "[\"a/b\"]", "without '/'"),
];

#[test]
fn every_out_of_range_value_names_field_value_and_range() {
    for (path, value, range) in BAD {
        let mut c = StreamConfig::default();
        c.apply_override(&format!("{path}={value}")).unwrap();
        let err = c.validate().expect_err(path);
        let expected_field = if *path == "encoder.hwaccel.enabled" {
            "encoder.hwaccel.device"
        } else {
            path
        };
        assert_eq!(err.invalid()[0].field, expected_field, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(expected_field) && msg.contains(range), "{msg}");
        if expected_field == *path {
            assert!(msg.contains(value.trim_matches(['[', ']'])), "{msg}");
        }
    }
}

#[test]
fn enums_reject_unknown_names_with_the_valid_ones() {
    let mut c = StreamConfig::default();
    let err = c
        .apply_override("encoder.preset=slowest")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("slowest") && err.contains("ultrafast"),
        "{err}"
    );
    let err = c
        .apply_override("pipeline.format=gif")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gif") && err.contains("jpeg"), "{err}");
    let err = c
        .apply_override("renderer.quality.filterMode=bicubic")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bicubic") && err.contains("cubic") && err.contains("nearest"),
        "{err}"
    );
    let err = c
        .apply_override("renderer.backend=vulkan")
        .unwrap_err()
        .to_string();
    assert!(err.contains("vulkan") && err.contains("gpu"), "{err}");
}

#[test]
fn overrides_set_nested_and_optional_fields() {
    let mut c = StreamConfig::default();
    c.apply_override("encoder.preset=veryfast").unwrap();
    c.apply_override("encoder.pipeline.zeroCopy=false").unwrap();
    c.apply_override("encoder.hwaccel.device=nvidia").unwrap();
    c.apply_override("encoder.pipeline.cpuFlags=[\"SSE2\",\"AVX2\"]")
        .unwrap();
    assert_eq!(c.encoder.preset, Preset::Veryfast);
    assert!(!c.encoder.pipeline.zero_copy);
    assert_eq!(c.encoder.hwaccel.device, Some(HwDevice::Nvidia));
    assert_eq!(c.encoder.pipeline.cpu_flags.as_deref().unwrap().len(), 2);
    c.validate().unwrap();
    c.apply_override("rtmp={ ping = 5, ping_timeout = 10 }")
        .unwrap();
    assert_eq!(
        (c.rtmp.ping, c.rtmp.ping_timeout, c.rtmp.chunk_size),
        (5, 10, 60000)
    );
    let err = c
        .apply_override("encoder.nosuch=1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuch") && err.contains("preset"), "{err}");
    let err = c
        .apply_override("video.preset=fast")
        .unwrap_err()
        .to_string();
    assert!(err.contains("video") && err.contains("encoder"), "{err}");
}

#[test]
fn partial_toml_fills_defaults_and_round_trips() {
    let c = StreamConfig::from_toml("[encoder]\npreset = \"medium\"\n").unwrap();
    assert_eq!(c.encoder.preset, Preset::Medium);
    assert_eq!(c.pipeline, PipelineConfig::default());
    let back = StreamConfig::from_toml(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let err = StreamConfig::from_toml("[encoder]\npreset = \"medium\"\nthreds = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3") && err.contains("threds"), "{err}");
}

/// Every enum's `Display` (and `as_str`, where it has one) is its serde name, for every
/// variant, and the serde name reads back as the same variant.
#[test]
fn enum_names_are_their_serde_names() {
    fn check<T>(variants: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + Serialize + for<'de> Deserialize<'de>,
        &'static str: From<T>,
    {
        for &v in variants {
            let serde_name = match toml::Value::try_from(v).unwrap() {
                toml::Value::String(s) => s,
                other => panic!("{v:?} serializes to {other:?}"),
            };
            assert_eq!(v.to_string(), serde_name, "{v:?}");
            assert_eq!(<&'static str>::from(v), serde_name, "{v:?}");
            assert_eq!(toml::Value::String(serde_name).try_into::<T>().unwrap(), v);
        }
    }
    use strum::VariantArray;
    check(PreloadStrategy::VARIANTS);
    check(CacheStrategy::VARIANTS);
    check(OptimizeFor::VARIANTS);
    check(RenderBackend::VARIANTS);
    check(Api::VARIANTS);
    check(TextureQuality::VARIANTS);
    check(FilterMode::VARIANTS);
    check(Preset::VARIANTS);
    check(HwDevice::VARIANTS);
    check(RateMode::VARIANTS);
    check(DropPolicy::VARIANTS);
    check(FrameFormat::VARIANTS);
    assert_eq!(Preset::ALL, Preset::VARIANTS);
    assert_eq!(HwDevice::ALL, HwDevice::VARIANTS);
    let names: Vec<_> = Preset::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium"
        ]
    );
    let names: Vec<_> = HwDevice::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(names, ["nvidia", "qsv", "vaapi", "amf", "videotoolbox"]);
    // `stream-manager hwaccel` pads with `{device:<13}`, which the bare name ignores.
    assert_eq!(format!("{:<13}|", HwDevice::Qsv), "qsv|");
}

/// The Invalid list follows the sections and their fields in this order (as the one
/// `validate()` before the split checked them).
const CHECK_ORDER: &[&str] = &[
    "core.viewport.width",
    "core.viewport.height",
    "core.viewport.fps",
    "core.viewport.gridSize",
    "core.viewport.safeAreaMargin.x",
    "core.viewport.safeAreaMargin.y",
    "core.assets.cacheSize",
    "core.assets.cacheLifetime",
    "core.layout.maxLayers",
    "core.layout.layers",
    "core.layout.updateInterval",
    "core.composition.threadPool",
    "core.composition.batchSize",
    "renderer.performance.maxConcurrent",
    "renderer.performance.batchSize",
    "renderer.performance.priorityLevels",
    "renderer.memory.textureCache",
    "renderer.memory.geometryCache",
    "renderer.memory.shaderCache",
    "encoder.gop",
    "encoder.pipeline.threads",
    "encoder.pipeline.maxLatency",
    "encoder.pipeline.dropThreshold",
    "encoder.pipeline.cpuFlags",
    "encoder.hwaccel.device",
    "encoder.rateControl.crf",
    "encoder.rateControl.bitrateKbps",
    "encoder.rateControl.vbvBufferKbits",
    "pipeline.maxQueueSize",
    "pipeline.poolSize",
    "pipeline.quality",
    "pipeline.pressureRssMb",
    "pipeline.pressureQueuePercent",
    "rtmp.chunk_size",
    "rtmp.ping",
    "rtmp.ping_timeout",
    "rtmp.handshake_timeout",
    "rtmp.max_connections",
    "rtmp.player_queue",
    "rtmp.fanout_threads",
    "rtmp.drain_timeout",
    "rtmp.publish_keys",
    "adaptive.bitrate.triggerMs",
    "adaptive.bitrate.dropMs",
    "adaptive.bitrate.marginPercent",
    "adaptive.bitrate.minKbps",
    "adaptive.bitrate.holdMs",
    "adaptive.bitrate.clearMs",
    "adaptive.bitrate.stepUpPercent",
    "adaptive.bitrate.drainMs",
    "adaptive.quality.behindPercent",
    "adaptive.quality.headroomPercent",
    "adaptive.quality.holdMs",
    "adaptive.quality.clearMs",
    "adaptive.quality.minScalePercent",
    "adaptive.workers.min",
    "adaptive.bitrate.enabled",
];

#[test]
fn every_bad_field_is_listed_in_check_order() {
    let mut c = StreamConfig::default();
    let v = &mut c.core.viewport;
    (v.width, v.height, v.fps, v.grid_size) = (15, 15, 0, 0);
    c.core.assets.cache_size = 0;
    c.core.assets.cache_lifetime = 0;
    c.core.layout.max_layers = 0;
    c.core.layout.update_interval = 0;
    c.core.composition.thread_pool = 0;
    c.core.composition.batch_size = 0;
    c.renderer.performance = RenderPerformance {
        max_concurrent: 0,
        batch_size: 0,
        priority_levels: 0,
    };
    c.renderer.memory = RenderMemory {
        texture_cache: 0,
        geometry_cache: 0,
        shader_cache: 0,
    };
    let e = &mut c.encoder;
    (e.gop, e.pipeline.threads, e.pipeline.max_latency) = (0, 0, 0);
    e.pipeline.cpu_flags = Some(vec!["AVX9".into()]);
    e.hwaccel.enabled = true;
    (e.rate_control.crf, e.rate_control.bitrate_kbps) = (52, 1);
    e.rate_control.vbv_buffer_kbits = 1;
    let p = &mut c.pipeline;
    (p.max_queue_size, p.pool_size, p.jpeg_quality) = (0, 0, 0);
    (p.pressure_rss_mb, p.pressure_queue_percent) = ((1 << 20) + 1, 0);
    let t = &mut c.rtmp;
    (t.chunk_size, t.ping, t.ping_timeout, t.handshake_timeout) = (0, 0, 0, 0);
    (t.max_connections, t.player_queue, t.fanout_threads) = (0, 0, 0);
    t.drain_timeout = 601;
    t.publish_keys = vec![String::new()];
    let a = &mut c.adaptive;
    a.bitrate.enabled = true;
    (
        a.bitrate.trigger_ms,
        a.bitrate.drop_ms,
        a.bitrate.margin_percent,
    ) = (10, 10, 91);
    (
        a.bitrate.min_kbps,
        a.bitrate.clear_ms,
        a.bitrate.step_up_percent,
    ) = (2, 0, 0);
    (a.bitrate.hold_ms, a.bitrate.drain_ms) = (60_001, 60_001);
    let q = &mut a.quality;
    (q.behind_percent, q.headroom_percent, q.hold_ms, q.clear_ms) = (5, 0, 60_001, 0);
    q.min_scale_percent = 24;
    (a.workers.enabled, a.workers.min) = (true, 0);
    let err = c.validate().unwrap_err();
    let fields: Vec<&str> = err.invalid().iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, CHECK_ORDER);
}

#[test]
fn adaptive_bitrate_needs_bitrate_mode_and_says_so() {
    let mut c = StreamConfig::default();
    c.adaptive.bitrate.enabled = true;
    let err = c.validate().unwrap_err();
    assert_eq!(err.invalid().len(), 1, "{err}");
    assert!(
        err.to_string().starts_with(
            "invalid adaptive.bitrate.enabled = true (expected false unless encoder.rateControl.mode = \"bitrate\""
        ),
        "{err}"
    );
    c.encoder.rate_control.mode = RateMode::Bitrate;
    c.validate().unwrap();
    // Its floor must sit under the bitrate it steers.
    c.adaptive.bitrate.min_kbps = 3000;
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "invalid adaptive.bitrate.minKbps = 3000 (expected 16..=2500)"
    );
}

#[test]
fn the_old_switch_of_adaptive_bitrate_is_still_read_as_the_new_one() {
    let from_file = StreamConfig::from_toml("[adaptive]\nenabled = true\n").unwrap();
    assert!(from_file.adaptive.bitrate.enabled);
    let mut set = StreamConfig::default();
    set.apply_override("adaptive.enabled=true").unwrap();
    assert!(set.adaptive.bitrate.enabled);
    // Older results hold it in their configs.
    let mut json = serde_json::to_value(StreamConfig::default()).unwrap();
    json["adaptive"]["enabled"] = true.into();
    json["adaptive"]["bitrate"]
        .as_object_mut()
        .unwrap()
        .remove("enabled");
    let old: StreamConfig = serde_json::from_value(json).unwrap();
    assert!(old.adaptive.bitrate.enabled);
    // Written now, it is the new key only.
    let table = old.to_table();
    assert!(
        !table["adaptive"]
            .as_table()
            .unwrap()
            .contains_key("enabled")
    );
    assert_eq!(
        table["adaptive"]["bitrate"]["enabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn each_stream_gets_the_shared_settings_with_its_own_table_over_them() {
    let text = r#"
[encoder]
preset = "veryfast"
gop = 50

[streams.s1]
encoder.preset = "medium"

[streams.s2.core.viewport]
width = 640
height = 360
"#;
    let each = each_from_toml(text, 3).unwrap();
    assert_eq!(each[0].encoder.preset, Preset::Veryfast);
    assert_eq!(each[1].encoder.preset, Preset::Medium);
    assert_eq!(
        each[1].encoder.gop, 50,
        "shared settings stay under a stream's own"
    );
    assert_eq!(each[2].encoder.preset, Preset::Veryfast);
    assert_eq!(
        (each[2].core.viewport.width, each[2].core.viewport.height),
        (640, 360)
    );
    assert_eq!(each[2].core.viewport.fps, each[0].core.viewport.fps);
}

#[test]
fn a_stream_table_for_no_stream_or_with_a_bad_field_is_named() {
    let e = each_from_toml("[streams.s3]\nencoder.preset = \"medium\"\n", 2).unwrap_err();
    assert!(
        e.to_string().contains("[streams.s3]") && e.to_string().contains("s0..=s1"),
        "{e}"
    );
    let e = each_from_toml("[streams.s1]\nencoder.presett = \"medium\"\n", 2).unwrap_err();
    assert!(
        e.to_string().contains("[streams.s1]") && e.to_string().contains("presett"),
        "{e}"
    );
    let e = each_from_toml("streams = 3\n", 2).unwrap_err();
    assert!(e.to_string().contains("streams = 3"), "{e}");
}
