//! The frames suite's `quality` part: PSNR and SSIM of the encoded stream against the source
//! frames, computed in process with libavfilter's `psnr` and `ssim` filters (through
//! ffmpeg-next), and again with the ffmpeg CLI's filters on the same files, to show they agree.
//!
//! The stream is encoded to an FLV file; the source frames are drawn again (the scene and the
//! core are pure functions of the frame id) and also written as raw YUV for the CLI. Both sides
//! put `settb=1/30,setpts=N` on each input so frames pair by index. The averages are the
//! filters' own: PSNR from the mean of the per-frame MSE, SSIM the mean of the per-frame "All".

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use streamer::config::StreamConfig;
use streamer::core::Core;
use streamer::frame::RawPicture;
use streamer::output::Output;
use streamer::probe::{NoProbe, Probe};
use streamer::source::Scene;
use streamer::stream::{Pacing, Stream};

/// The quality of one encoded stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityFigures {
    pub frames: u64,
    /// In process (libavfilter through ffmpeg-next).
    pub psnr_db: f64,
    pub ssim: f64,
    /// The ffmpeg CLI's `psnr` / `ssim` on the same files.
    pub cli_psnr_db: Option<f64>,
    pub cli_ssim: Option<f64>,
    pub bitrate_kbps: f64,
}

/// Why quality could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("quality: {0}")]
pub struct FidelityError(pub String);

fn err(what: &str) -> impl Fn(ff::Error) -> FidelityError + '_ {
    move |e| FidelityError(format!("{what}: {e}"))
}

/// The filter graph: two buffer sources (encoded, source), psnr and ssim into two sinks.
struct Metrics {
    graph: ff::filter::Graph,
    mse: Vec<f64>,
    ssim: Vec<f64>,
}

impl Metrics {
    fn new(width: u32, height: u32) -> Result<Self, FidelityError> {
        let mut graph = ff::filter::Graph::new();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base=1/30:pixel_aspect=1/1",
            ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32
        );
        let find = |name: &str| {
            ff::filter::find(name).ok_or_else(|| FidelityError(format!("no {name} filter")))
        };
        graph
            .add(&find("buffer")?, "encoded", &args)
            .map_err(err("buffer source"))?;
        graph
            .add(&find("buffer")?, "source", &args)
            .map_err(err("buffer source"))?;
        graph
            .add(&find("buffersink")?, "psnr_out", "")
            .map_err(err("buffer sink"))?;
        graph
            .add(&find("buffersink")?, "ssim_out", "")
            .map_err(err("buffer sink"))?;
        graph
            .output("encoded", 0)
            .and_then(|p| p.output("source", 0))
            .and_then(|p| p.input("psnr_out", 0))
            .and_then(|p| p.input("ssim_out", 0))
            .and_then(|p| p.parse(SPEC))
            .map_err(err("building the filter graph"))?;
        graph
            .validate()
            .map_err(err("validating the filter graph"))?;
        Ok(Metrics {
            graph,
            mse: Vec::new(),
            ssim: Vec::new(),
        })
    }

    fn push(
        &mut self,
        encoded: Option<&ff::frame::Video>,
        source: Option<&ff::frame::Video>,
    ) -> Result<(), FidelityError> {
        for (name, frame) in [("encoded", encoded), ("source", source)] {
            let mut ctx = self
                .graph
                .get(name)
                .ok_or_else(|| FidelityError(format!("no {name} in the graph")))?;
            match frame {
                Some(f) => ctx.source().add(f).map_err(err("feeding the graph"))?,
                None => ctx.source().flush().map_err(err("flushing the graph"))?,
            }
        }
        self.pull()
    }

    fn pull(&mut self) -> Result<(), FidelityError> {
        for (sink, key) in [
            ("psnr_out", "lavfi.psnr.mse_avg"),
            ("ssim_out", "lavfi.ssim.All"),
        ] {
            let mut out = ff::frame::Video::empty();
            loop {
                let mut ctx = self
                    .graph
                    .get(sink)
                    .ok_or_else(|| FidelityError(format!("no {sink} in the graph")))?;
                if ctx.sink().frame(&mut out).is_err() {
                    break;
                }
                let value = out
                    .metadata()
                    .get(key)
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| FidelityError(format!("{sink}: no {key} on a frame")))?;
                if sink == "psnr_out" {
                    self.mse.push(value);
                } else {
                    self.ssim.push(value);
                }
            }
        }
        Ok(())
    }
}

const SPEC: &str = "[encoded]settb=1/30,setpts=N,split[e1][e2];\
                    [source]settb=1/30,setpts=N,split[s1][s2];\
                    [e1][s1]psnr[psnr_out];[e2][s2]ssim[ssim_out]";

/// PSNR from a mean squared error of 8-bit samples.
fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Encodes `frames` frames of `cfg` and measures their quality.
///
/// # Errors
/// The stream, the decoder, the filters or the files failed.
pub fn measure<P: Probe>(
    cfg: &StreamConfig,
    frames: u64,
    probe: &P,
) -> Result<FidelityFigures, FidelityError> {
    let dir = tempfile::tempdir().map_err(|e| FidelityError(e.to_string()))?;
    let flv = dir.path().join("encoded.flv");
    let yuv = dir.path().join("source.yuv");
    let mut stream = Stream::open(cfg, &Output::Flv(flv.clone()), probe)
        .map_err(|e| FidelityError(e.to_string()))?;
    stream
        .run(frames, Pacing::Max)
        .map_err(|e| FidelityError(e.to_string()))?;
    let summary = stream.finish().map_err(|e| FidelityError(e.to_string()))?;

    let (w, h) = (cfg.core.viewport.width, cfg.core.viewport.height);
    let mut metrics = Metrics::new(w, h)?;
    let scene = Scene::new(w, h);
    let mut core = Core::new(&cfg.core).map_err(|e| FidelityError(e.to_string()))?;
    let mut renderer = streamer::render::open(cfg).map_err(|e| FidelityError(e.to_string()))?;
    core.setup(&NoProbe)
        .map_err(|e| FidelityError(e.to_string()))?;
    let mut raw = std::io::BufWriter::new(
        std::fs::File::create(&yuv).map_err(|e| FidelityError(e.to_string()))?,
    );
    let mut picture = RawPicture::new(w, h);
    let mut next = 0u64;
    let mut on_decoded = |decoded: &ff::frame::Video| -> Result<(), FidelityError> {
        scene.draw(next, picture.planes());
        renderer
            .render(&mut core, next, &mut picture.planes(), &NoProbe)
            .map_err(|e| FidelityError(e.to_string()))?;
        raw.write_all(&picture.data)
            .map_err(|e| FidelityError(e.to_string()))?;
        // The buffer source takes the frame's reference: a fresh frame each time.
        let mut source = ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h);
        streamer::encode::copy_into(&picture, &mut source);
        source.set_pts(Some(next as i64));
        next += 1;
        metrics.push(Some(decoded), Some(&source))
    };
    decode(&flv, &mut on_decoded)?;
    metrics.push(None, None)?;
    raw.flush().map_err(|e| FidelityError(e.to_string()))?;
    drop(raw);
    if metrics.mse.is_empty() {
        return Err(FidelityError("no frame was compared".into()));
    }
    let mse = metrics.mse.iter().sum::<f64>() / metrics.mse.len() as f64;
    let ssim = metrics.ssim.iter().sum::<f64>() / metrics.ssim.len().max(1) as f64;
    let (cli_psnr_db, cli_ssim) = cli(&flv, &yuv, w, h);
    Ok(FidelityFigures {
        frames: metrics.mse.len() as u64,
        psnr_db: psnr(mse),
        ssim,
        cli_psnr_db,
        cli_ssim,
        bitrate_kbps: summary.bitrate_kbps,
    })
}

/// Decodes every video frame of `path`, in display order.
fn decode(
    path: &Path,
    on_frame: &mut dyn FnMut(&ff::frame::Video) -> Result<(), FidelityError>,
) -> Result<(), FidelityError> {
    let mut input = ff::format::input(path).map_err(err("opening the encoded file"))?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| FidelityError("no video stream in the encoded file".into()))?;
    let index = stream.index();
    let mut decoder = ff::codec::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(err("opening the decoder"))?;
    let mut frame = ff::frame::Video::empty();
    let mut drain = |decoder: &mut ff::decoder::Video| -> Result<(), FidelityError> {
        while decoder.receive_frame(&mut frame).is_ok() {
            on_frame(&frame)?;
        }
        Ok(())
    };
    for (s, packet) in input.packets() {
        if s.index() == index {
            decoder.send_packet(&packet).map_err(err("decoding"))?;
            drain(&mut decoder)?;
        }
    }
    decoder.send_eof().map_err(err("decoding"))?;
    drain(&mut decoder)
}

/// The ffmpeg CLI's PSNR average and SSIM All on the same files (None where it did not run).
fn cli(flv: &Path, yuv: &Path, w: u32, h: u32) -> (Option<f64>, Option<f64>) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(flv)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"])
        .arg(format!("{w}x{h}"))
        .args(["-r", "30", "-i"])
        .arg(yuv)
        .args([
            "-lavfi",
            "[0:v]settb=1/30,setpts=N,split[e1][e2];[1:v]settb=1/30,setpts=N,split[s1][s2];\
             [e1][s1]psnr;[e2][s2]ssim",
            "-f",
            "null",
            "-",
        ])
        .output();
    let Ok(out) = out else { return (None, None) };
    let log = String::from_utf8_lossy(&out.stderr);
    let after = |line_has: &str, key: &str| {
        log.lines()
            .find(|l| l.contains(line_has))
            .and_then(|l| l.split(key).nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    (after("PSNR", "average:"), after("SSIM", "All:"))
}
