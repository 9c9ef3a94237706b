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

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The whole stream's configuration: the guide's five config interfaces.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
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
}

/// The guide's `CoreConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    pub viewport: ViewportConfig,
    pub assets: AssetsConfig,
    pub layout: LayoutConfig,
    pub composition: CompositionConfig,
}

/// Output picture geometry and rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ViewportConfig {
    /// Width in pixels (even: the stream is 4:2:0).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Layout positions snap to this grid, in pixels.
    pub grid_size: u32,
    /// Content is kept this far inside the frame's edges, in pixels.
    pub safe_area_margin: Margin,
    /// Frames per second of the stream (not in the guide; the stream's clock).
    pub fps: u32,
}

/// A margin in pixels on each axis.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Margin {
    pub x: u32,
    pub y: u32,
}

/// Asset cache settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AssetsConfig {
    /// Cache bound in bytes.
    pub cache_size: u64,
    /// Load every asset before the first frame (`eager`) or on first use (`lazy`).
    pub preload_strategy: PreloadStrategy,
    /// Seconds an unused entry stays cached.
    pub cache_lifetime: u32,
    /// A folder of PNG/JPEG files to use as layer images (not in the guide); unset: generated
    /// images.
    pub dir: Option<std::path::PathBuf>,
}

/// When assets are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreloadStrategy {
    Eager,
    Lazy,
}

/// Layout engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LayoutConfig {
    /// Most layers a scene may hold.
    pub max_layers: u32,
    /// Milliseconds between layout recomputations.
    pub update_interval: u32,
    /// Apply pending changes once per frame instead of one by one.
    pub batch_updates: bool,
    /// Overlay layers in the synthetic scene, on top of its moving background (not in the
    /// guide, which leaves the scene to the application): at most `maxLayers`.
    pub layers: u32,
}

/// Compositor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CompositionConfig {
    /// Worker threads blending bands of the frame.
    pub thread_pool: u32,
    /// Layers blended per pass.
    pub batch_size: u32,
    /// Where pre-composed static layer groups are kept.
    pub cache_strategy: CacheStrategy,
    /// Integer blending and nearest scaling (`speed`) or exact rounding and bilinear (`quality`).
    pub optimize_for: OptimizeFor,
}

/// Where the compositor caches pre-composed layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStrategy {
    Memory,
    Disk,
}

/// What the compositor trades for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizeFor {
    Speed,
    Quality,
}

/// The guide's `RendererConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RendererConfig {
    /// Where the render stage runs: `gpu` (wgpu; an error when there is no adapter), `cpu`
    /// (the core's compositor), or `auto` (the GPU when a hardware adapter is found, else the
    /// CPU compositor, with a log line saying why).
    pub backend: RenderBackend,
    /// Graphics API for the GPU backend: `vulkan`, `gl` or `auto` (`WGPU_BACKEND` overrides).
    pub api: crate::render::gpu::Api,
    pub performance: RenderPerformance,
    pub quality: RenderQuality,
    pub memory: RenderMemory,
}

/// Where the render stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderBackend {
    Gpu,
    Cpu,
    #[default]
    Auto,
}

impl fmt::Display for RenderBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RenderBackend::Gpu => "gpu",
            RenderBackend::Cpu => "cpu",
            RenderBackend::Auto => "auto",
        })
    }
}

/// Renderer concurrency settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderPerformance {
    /// Frames rendered at once.
    pub max_concurrent: u32,
    /// Layers per draw call.
    pub batch_size: u32,
    /// Levels of the render job priority queue.
    pub priority_levels: u32,
}

/// Renderer quality settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderQuality {
    /// MSAA 4x.
    pub antialiasing: bool,
    pub texture_quality: TextureQuality,
    pub filter_mode: FilterMode,
}

/// Texture resolution scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextureQuality {
    Low,
    Medium,
    High,
}

/// Texture sampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    Nearest,
    Linear,
    Cubic,
}

/// Renderer cache sizes, in MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderMemory {
    /// The GPU's layer textures, by asset; least recently used out first.
    pub texture_cache: u32,
    /// The GPU's instance data of each draw call, by content; least recently used out first.
    pub geometry_cache: u32,
    /// The driver's compiled pipelines, kept in files for later runs (Vulkan); least recently
    /// used out first.
    pub shader_cache: u32,
}

/// The guide's `EncoderConfig`, plus GOP, rate control and tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EncoderConfig {
    /// x264 preset: faster presets cost less CPU and give a worse picture per bit.
    pub preset: Preset,
    pub hwaccel: HwAccelConfig,
    pub pipeline: EncoderPipeline,
    /// Keyframe interval in frames; every GOP is closed and exactly this long.
    pub gop: u32,
    /// `tune=zerolatency`: no lookahead, no B-frames, sliced threads; one frame in, one out.
    pub zerolatency: bool,
    pub rate_control: RateControl,
}

/// x264 presets the guide tests, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl Preset {
    /// Every preset, fastest first.
    pub const ALL: [Preset; 6] = [
        Preset::Ultrafast,
        Preset::Superfast,
        Preset::Veryfast,
        Preset::Faster,
        Preset::Fast,
        Preset::Medium,
    ];

    /// The name x264 and FFmpeg use.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hardware encoding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HwAccelConfig {
    pub enabled: bool,
    /// Which hardware encoder to use; required when `enabled`.
    pub device: Option<HwDevice>,
    /// Hardware decoding of inputs. The synthetic source has nothing to decode; the setting is
    /// validated and recorded.
    pub decode: Option<bool>,
    /// Hardware scaling. The path does not scale; the setting is validated and recorded.
    pub scaling: Option<bool>,
    /// When the device is unavailable, encode with libx264 and say so in the run's notes
    /// instead of failing.
    pub fallback: bool,
}

/// Hardware encoder families FFmpeg can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HwDevice {
    Nvidia,
    Qsv,
    Vaapi,
    Amf,
    Videotoolbox,
}

impl HwDevice {
    /// Every device family.
    pub const ALL: [HwDevice; 5] = [
        HwDevice::Nvidia,
        HwDevice::Qsv,
        HwDevice::Vaapi,
        HwDevice::Amf,
        HwDevice::Videotoolbox,
    ];

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            HwDevice::Nvidia => "nvidia",
            HwDevice::Qsv => "qsv",
            HwDevice::Vaapi => "vaapi",
            HwDevice::Amf => "amf",
            HwDevice::Videotoolbox => "videotoolbox",
        }
    }
}

impl fmt::Display for HwDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoder's pipeline settings (`EncoderConfig.pipeline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EncoderPipeline {
    /// Most milliseconds a frame may take from capture to send.
    pub max_latency: u32,
    /// A frame this many milliseconds late is dropped rather than encoded.
    pub drop_threshold: u32,
    /// Encode straight from pooled frame buffers (true) or copy each picture into a fresh frame.
    pub zero_copy: bool,
    /// Encoder threads.
    pub threads: u32,
    /// x264 CPU features to use (x264's `asm` names, e.g. `SSE2`, `AVX2`); unset = detect.
    pub cpu_flags: Option<Vec<String>>,
}

/// How the encoder spends bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RateControl {
    pub mode: RateMode,
    /// Constant rate factor for `crf` mode (0 = lossless … 51 = worst).
    pub crf: u32,
    /// Target bitrate for `bitrate` mode, kbit/s; also the VBV max rate.
    pub bitrate_kbps: u32,
    /// VBV buffer for `bitrate` mode, kbit.
    pub vbv_buffer_kbits: u32,
}

/// Rate-control modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateMode {
    Crf,
    Bitrate,
}

/// The guide's `PipelineConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineConfig {
    /// Most frames waiting in the queue.
    pub max_queue_size: u32,
    /// Worker threads converting frames.
    pub pool_size: u32,
    /// JPEG quality, 1–100.
    pub quality: u32,
    pub format: FrameFormat,
    /// What a full queue does with a new frame (not in the guide, which leaves it unsaid).
    pub drop_policy: DropPolicy,
    /// Frames come from a pool of reused buffers (`false`: a fresh buffer per frame).
    pub buffer_pool: bool,
    /// Memory pressure: above this resident size (MiB) the pipeline sheds frames and trims
    /// caches; 0 turns the watch off.
    pub pressure_rss_mb: u32,
    /// Memory pressure: queue fill (percent of `maxQueueSize`) above which new frames are shed.
    pub pressure_queue_percent: u32,
}

/// What a full frame queue does when another frame arrives. Every drop is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropPolicy {
    /// Drop the oldest queued frame to make room (live streams: keep latency low).
    Oldest,
    /// Drop the arriving frame (keep what is queued).
    Newest,
    /// Make the producer wait for room (nothing dropped by the queue; lateness may drop later).
    Block,
}

/// What the pipeline's workers turn frames into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameFormat {
    Raw,
    Jpeg,
    Png,
}

impl fmt::Display for FilterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterMode::Nearest => "nearest",
            FilterMode::Linear => "linear",
            FilterMode::Cubic => "cubic",
        })
    }
}

impl fmt::Display for TextureQuality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextureQuality::Low => "low",
            TextureQuality::Medium => "medium",
            TextureQuality::High => "high",
        })
    }
}

impl fmt::Display for FrameFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameFormat::Raw => "raw",
            FrameFormat::Jpeg => "jpeg",
            FrameFormat::Png => "png",
        })
    }
}

impl fmt::Display for DropPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropPolicy::Oldest => "oldest",
            DropPolicy::Newest => "newest",
            DropPolicy::Block => "block",
        })
    }
}

/// The guide's `RTMPConfig` (names as in node-media-server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Outgoing chunk size in bytes.
    pub chunk_size: u32,
    /// Keep the packets since the last keyframe for late joiners.
    pub gop_cache: bool,
    /// Seconds between pings to each peer.
    pub ping: u32,
    /// Seconds of silence after which a peer is closed.
    pub ping_timeout: u32,
    /// Seconds a new connection has to complete the RTMP handshake (not in the guide).
    pub handshake_timeout: u32,
    /// Most connections the server holds at once; more are closed on accept (not in the guide).
    pub max_connections: u32,
    /// Frames queued per player before the server drops its non-key frames until the next
    /// keyframe (not in the guide).
    pub player_queue: u32,
    /// `TCP_NODELAY` on a player's connection once it has had its first media (setting up
    /// always runs with it on). Off (the default, as nginx-rtmp leaves it), Nagle's algorithm
    /// holds a frame while the player has not yet acknowledged the one before; players
    /// acknowledge at once, except just after they answer a ping (then their kernel delays
    /// acknowledgements to send them with the next answer), so for one second after each ping
    /// the server turns TCP_NODELAY on for that player, which shortens most of those waits. On,
    /// every frame always leaves at once from the server's thread, which costs the server 8–19%
    /// more CPU at 200 players here, with no better relay p99 (not in the guide).
    pub tcp_nodelay: bool,
    /// Threads that hand a large frame to a stream's players (when frame size × players is
    /// 4 MiB or more, e.g. a keyframe to 40 players): the publisher's connection and
    /// `fanout_threads - 1` helpers, each taking a share of the players. 1 hands every frame on
    /// the publisher's connection alone (not in the guide).
    pub fanout_threads: u32,
    /// Stream keys allowed to publish; empty allows any (not in the guide).
    pub publish_keys: Vec<String>,
}

impl Default for ViewportConfig {
    fn default() -> Self {
        ViewportConfig {
            width: 1280,
            height: 720,
            grid_size: 8,
            safe_area_margin: Margin { x: 64, y: 36 },
            fps: 30,
        }
    }
}

impl Default for AssetsConfig {
    fn default() -> Self {
        AssetsConfig {
            cache_size: 256 * 1024 * 1024,
            preload_strategy: PreloadStrategy::Eager,
            cache_lifetime: 300,
            dir: None,
        }
    }
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig {
            max_layers: 32,
            update_interval: 33,
            batch_updates: true,
            layers: 4,
        }
    }
}

impl Default for CompositionConfig {
    fn default() -> Self {
        CompositionConfig {
            thread_pool: 2,
            batch_size: 8,
            cache_strategy: CacheStrategy::Memory,
            optimize_for: OptimizeFor::Speed,
        }
    }
}

impl Default for RenderPerformance {
    fn default() -> Self {
        RenderPerformance {
            max_concurrent: 2,
            batch_size: 16,
            priority_levels: 3,
        }
    }
}

impl Default for RenderQuality {
    fn default() -> Self {
        RenderQuality {
            antialiasing: false,
            texture_quality: TextureQuality::High,
            filter_mode: FilterMode::Linear,
        }
    }
}

impl Default for RenderMemory {
    fn default() -> Self {
        RenderMemory {
            texture_cache: 256,
            geometry_cache: 64,
            shader_cache: 16,
        }
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            preset: Preset::Ultrafast,
            hwaccel: HwAccelConfig::default(),
            pipeline: EncoderPipeline::default(),
            gop: 60,
            zerolatency: true,
            rate_control: RateControl::default(),
        }
    }
}

impl Default for EncoderPipeline {
    fn default() -> Self {
        EncoderPipeline {
            max_latency: 1000,
            drop_threshold: 500,
            zero_copy: true,
            threads: 2,
            cpu_flags: None,
        }
    }
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl {
            mode: RateMode::Crf,
            crf: 23,
            bitrate_kbps: 2500,
            vbv_buffer_kbits: 2500,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_size: 30,
            pool_size: 4,
            quality: 85,
            format: FrameFormat::Raw,
            drop_policy: DropPolicy::Oldest,
            buffer_pool: true,
            pressure_rss_mb: 0,
            pressure_queue_percent: 100,
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            chunk_size: 60000,
            gop_cache: true,
            ping: 30,
            ping_timeout: 60,
            handshake_timeout: 10,
            max_connections: 1000,
            player_queue: 120,
            fanout_threads: 2,
            tcp_nodelay: false,
            publish_keys: Vec::new(),
        }
    }
}

/// x264's names for CPU features (its `asm` parameter), as `cpuFlags` accepts them.
pub const X264_CPU_FLAGS: &[&str] = &[
    "MMX2",
    "MMXEXT",
    "SSE",
    "SSE2",
    "SSE2Slow",
    "SSE2Fast",
    "LZCNT",
    "SSE3",
    "SSSE3",
    "SSE4.1",
    "SSE4",
    "SSE4.2",
    "AVX",
    "XOP",
    "FMA4",
    "FMA3",
    "BMI1",
    "BMI2",
    "AVX2",
    "AVX512",
    "SlowShuffle",
    "SlowAtom",
    "SlowPshufb",
    "SlowPalignr",
    "SlowCTZ",
    "Cache32",
    "Cache64",
];

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
        let v = &self.core.viewport;
        for (field, value, max) in [
            ("core.viewport.width", v.width, 7680),
            ("core.viewport.height", v.height, 4320),
        ] {
            if !(16..=max).contains(&value) || value % 2 != 0 {
                c.fail(field, value, format!("an even number in 16..={max}"));
            }
        }
        c.range("core.viewport.fps", v.fps.into(), 1, 240);
        c.range(
            "core.viewport.gridSize",
            v.grid_size.into(),
            1,
            v.width.min(v.height).max(1).into(),
        );
        c.range(
            "core.viewport.safeAreaMargin.x",
            v.safe_area_margin.x.into(),
            0,
            (v.width / 2).saturating_sub(1).into(),
        );
        c.range(
            "core.viewport.safeAreaMargin.y",
            v.safe_area_margin.y.into(),
            0,
            (v.height / 2).saturating_sub(1).into(),
        );
        let a = &self.core.assets;
        c.range("core.assets.cacheSize", a.cache_size, 1, 1 << 40);
        c.range(
            "core.assets.cacheLifetime",
            a.cache_lifetime.into(),
            1,
            86_400,
        );
        let l = &self.core.layout;
        c.range("core.layout.maxLayers", l.max_layers.into(), 1, 256);
        c.range(
            "core.layout.layers",
            l.layers.into(),
            0,
            l.max_layers.into(),
        );
        c.range(
            "core.layout.updateInterval",
            l.update_interval.into(),
            1,
            60_000,
        );
        let k = &self.core.composition;
        c.range("core.composition.threadPool", k.thread_pool.into(), 1, 64);
        c.range("core.composition.batchSize", k.batch_size.into(), 1, 256);

        let r = &self.renderer;
        c.range(
            "renderer.performance.maxConcurrent",
            r.performance.max_concurrent.into(),
            1,
            16,
        );
        c.range(
            "renderer.performance.batchSize",
            r.performance.batch_size.into(),
            1,
            1024,
        );
        c.range(
            "renderer.performance.priorityLevels",
            r.performance.priority_levels.into(),
            1,
            16,
        );
        c.range(
            "renderer.memory.textureCache",
            r.memory.texture_cache.into(),
            1,
            65_536,
        );
        c.range(
            "renderer.memory.geometryCache",
            r.memory.geometry_cache.into(),
            1,
            65_536,
        );
        c.range(
            "renderer.memory.shaderCache",
            r.memory.shader_cache.into(),
            1,
            65_536,
        );

        let e = &self.encoder;
        c.range("encoder.gop", e.gop.into(), 1, 1000);
        c.range("encoder.pipeline.threads", e.pipeline.threads.into(), 1, 64);
        c.range(
            "encoder.pipeline.maxLatency",
            e.pipeline.max_latency.into(),
            1,
            60_000,
        );
        c.range(
            "encoder.pipeline.dropThreshold",
            e.pipeline.drop_threshold.into(),
            1,
            e.pipeline.max_latency.max(1).into(),
        );
        if let Some(flags) = &e.pipeline.cpu_flags {
            for flag in flags {
                if !X264_CPU_FLAGS.contains(&flag.as_str()) {
                    c.fail(
                        "encoder.pipeline.cpuFlags",
                        format!("{flag:?}"),
                        format!("x264 CPU flag names: {}", X264_CPU_FLAGS.join(", ")),
                    );
                }
            }
        }
        if e.hwaccel.enabled && e.hwaccel.device.is_none() {
            c.fail(
                "encoder.hwaccel.device",
                "(unset)",
                "one of nvidia, qsv, vaapi, amf, videotoolbox when hwaccel.enabled = true",
            );
        }
        c.range("encoder.rateControl.crf", e.rate_control.crf.into(), 0, 51);
        c.range(
            "encoder.rateControl.bitrateKbps",
            e.rate_control.bitrate_kbps.into(),
            16,
            200_000,
        );
        c.range(
            "encoder.rateControl.vbvBufferKbits",
            e.rate_control.vbv_buffer_kbits.into(),
            16,
            400_000,
        );

        let p = &self.pipeline;
        c.range("pipeline.maxQueueSize", p.max_queue_size.into(), 1, 1000);
        c.range("pipeline.poolSize", p.pool_size.into(), 1, 64);
        c.range("pipeline.quality", p.quality.into(), 1, 100);
        c.range(
            "pipeline.pressureRssMb",
            p.pressure_rss_mb.into(),
            0,
            1 << 20,
        );
        c.range(
            "pipeline.pressureQueuePercent",
            p.pressure_queue_percent.into(),
            1,
            100,
        );

        let t = &self.rtmp;
        c.range("rtmp.chunk_size", t.chunk_size.into(), 128, 16_777_215);
        c.range("rtmp.ping", t.ping.into(), 1, 3600);
        c.range(
            "rtmp.ping_timeout",
            t.ping_timeout.into(),
            t.ping.max(1).into(),
            7200,
        );
        c.range("rtmp.handshake_timeout", t.handshake_timeout.into(), 1, 600);
        c.range("rtmp.max_connections", t.max_connections.into(), 1, 100_000);
        c.range("rtmp.player_queue", t.player_queue.into(), 2, 10_000);
        c.range("rtmp.fanout_threads", t.fanout_threads.into(), 1, 64);
        for key in &t.publish_keys {
            if key.is_empty() || key.contains(['/', '?', ' ']) {
                c.fail(
                    "rtmp.publish_keys",
                    format!("{key:?}"),
                    "non-empty keys without '/', '?' or spaces",
                );
            }
        }

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
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.pipeline.quality, 85);
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
}
