//! Asset files for a point whose scenario asks for them (`core.assets.dir = "<files>"`).

use super::{PointJob, RunError};

/// The `core.assets.dir` value that asks for the generated badges as files.
pub const ASSET_FILES: &str = "<files>";

/// Writes the generated badges as PNG (even ones) and JPEG (odd ones) files.
fn write_asset_files() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("stream-manager-assets-")
        .tempdir()?;
    for (i, src) in streamer::core::generated_assets().iter().enumerate() {
        let img = src
            .load()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let buf = image::RgbaImage::from_raw(img.width, img.height, img.rgba)
            .ok_or_else(|| std::io::Error::other("badge size"))?;
        let result = if i % 2 == 0 {
            buf.save(dir.path().join(format!("badge-{i}.png")))
        } else {
            image::DynamicImage::ImageRgba8(buf)
                .to_rgb8()
                .save(dir.path().join(format!("badge-{i}.jpg")))
        };
        result.map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(dir)
}

/// `job` with its asset files written, when it asks for them, and the folder that holds them
/// (removed when dropped).
pub(super) fn prepare(job: &PointJob) -> Result<(PointJob, Option<tempfile::TempDir>), RunError> {
    let mut job = job.clone();
    let dir = match &job.config.core.assets.dir {
        Some(d) if d.as_os_str() == ASSET_FILES => {
            let dir =
                write_asset_files().map_err(|e| RunError::Protocol(format!("asset files: {e}")))?;
            job.config.core.assets.dir = Some(dir.path().to_path_buf());
            Some(dir)
        }
        _ => None,
    };
    Ok((job, dir))
}
