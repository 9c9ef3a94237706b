//! PSNR/SSIM in process (libavfilter through ffmpeg-next) agree with the ffmpeg CLI's filters.

use harness::fidelity::measure;
use streamer::config::{FrameFormat, StreamConfig};

#[test]
fn in_process_psnr_and_ssim_agree_with_the_ffmpeg_cli() {
    for format in [FrameFormat::Raw, FrameFormat::Jpeg] {
        let mut cfg = StreamConfig::default();
        cfg.core.viewport.width = 320;
        cfg.core.viewport.height = 180;
        cfg.core.viewport.safe_area_margin.x = 16;
        cfg.core.viewport.safe_area_margin.y = 8;
        cfg.pipeline.format = format;
        cfg.pipeline.jpeg_quality = 60;
        let q = measure(&cfg, 20, &streamer::probe::NoProbe).unwrap();
        assert_eq!(q.frames, 20, "{format:?}: every frame compared");
        assert!(q.psnr_db > 25.0 && q.psnr_db < 80.0, "{format:?}: {q:?}");
        assert!(q.ssim > 0.8 && q.ssim <= 1.0, "{format:?}: {q:?}");
        let cli_psnr = q
            .cli_psnr_db
            .expect("the ffmpeg CLI must run (installed by .ci/run)");
        let cli_ssim = q.cli_ssim.expect("the ffmpeg CLI reports SSIM");
        assert!((q.psnr_db - cli_psnr).abs() <= 0.1, "{format:?}: {q:?}");
        assert!((q.ssim - cli_ssim).abs() <= 0.001, "{format:?}: {q:?}");
    }
}
