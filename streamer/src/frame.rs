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

/// A YUV420P frame's planes as [`Planes`], to draw into.
pub fn frame_planes(frame: &mut ffmpeg_next::frame::Video) -> Planes<'_> {
    let strides = [frame.stride(0), frame.stride(1), frame.stride(2)];
    // SAFETY: the three planes of a YUV420P frame are separate allocations (or disjoint parts of
    // one buffer); taking them mutably at once does not alias.
    let ptrs: [(*mut u8, usize); 3] = std::array::from_fn(|i| {
        let d = frame.data_mut(i);
        (d.as_mut_ptr(), d.len())
    });
    let [y, u, v] = ptrs.map(|(p, n)| unsafe { std::slice::from_raw_parts_mut(p, n) });
    Planes {
        y,
        y_stride: strides[0],
        u,
        u_stride: strides[1],
        v,
        v_stride: strides[2],
    }
}
