//! The picture every stage shares: YUV420P planes with their strides ([`Planes`], borrowed from
//! whoever owns the memory: an FFmpeg frame, a pooled slot or a [`RawPicture`]) and a picture in
//! plain memory ([`RawPicture`]). It belongs to no stage: the scene draws into it, the core and
//! the renderer compose over it, the pipeline converts it and the encoder reads it.

/// Mutable YUV420P planes of one picture, with their strides.
pub struct Planes<'a> {
    pub y: &'a mut [u8],
    pub y_stride: usize,
    pub u: &'a mut [u8],
    pub u_stride: usize,
    pub v: &'a mut [u8],
    pub v_stride: usize,
}

/// A picture in plain memory: one contiguous YUV420P buffer (as `ffmpeg -f rawvideo` reads it).
pub struct RawPicture {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RawPicture {
    /// A zeroed picture.
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        RawPicture {
            width,
            height,
            data: vec![0; width * height * 3 / 2],
        }
    }

    /// The picture's planes, for drawing into.
    pub fn planes(&mut self) -> Planes<'_> {
        let (w, h) = (self.width, self.height);
        let (y, uv) = self.data.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut(w * h / 4);
        Planes {
            y,
            y_stride: w,
            u,
            u_stride: w / 2,
            v,
            v_stride: w / 2,
        }
    }

    /// Luma, Cb and Cr as slices with their row widths.
    pub fn plane_slices(&self) -> [(&[u8], usize); 3] {
        let (w, h) = (self.width, self.height);
        let (y, uv) = self.data.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        [(y, w), (u, w / 2), (v, w / 2)]
    }
}
