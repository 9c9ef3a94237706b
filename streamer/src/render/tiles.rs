//! The tiles that travel between the frame and the GPU: which 64×16 tiles the layers cover,
//! grouped in runs side by side in a band of rows, where each run's bytes go in the upload and
//! the readback, and the tile entries yuv.wgsl reads. Plain CPU arithmetic, no GPU.

/// The tiles that travel, in luma samples (yuv.wgsl's `LUMA_WORDS` and `CHROMA_WORDS` follow).
pub const TILE_W: u32 = 64;
pub const TILE_H: u32 = 16;
/// Bytes of one tile's entry (`Tile` in yuv.wgsl), and of the tile list's header.
pub const TILE_ENTRY: usize = 32;
pub const TILES_HEADER: usize = 16;

/// Covered tiles side by side in one band of rows: what travels to the GPU and back as one
/// block (its Y rows, then its U rows, then its V rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Left column, top row, width and height, in luma samples.
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
    /// Where its bytes start in the upload and the readback.
    pub offset: usize,
}

impl Run {
    pub fn bytes(&self) -> usize {
        self.w * self.h * 3 / 2
    }

    /// Every row of this run, plane by plane, as one copy between the frame and the run's
    /// block: (plane 0–2, offset in that plane for `strides`, offset in the block, bytes).
    pub fn segments(
        &self,
        strides: [usize; 3],
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let luma = self.w * self.h;
        // Y, then U, then V: (top row, left column, row bytes, rows, block offset).
        let planes = [
            (self.y, self.x, self.w, self.h, self.offset),
            (
                self.y / 2,
                self.x / 2,
                self.w / 2,
                self.h / 2,
                self.offset + luma,
            ),
            (
                self.y / 2,
                self.x / 2,
                self.w / 2,
                self.h / 2,
                self.offset + luma * 5 / 4,
            ),
        ];
        planes
            .into_iter()
            .enumerate()
            .flat_map(move |(p, (top, left, row, rows, at))| {
                (0..rows).map(move |r| (p, (top + r) * strides[p] + left, at + r * row, row))
            })
    }
}

/// The runs of covered tiles for layers over `rects` in a `width`×`height` frame, into `runs`,
/// and their tiles' entries for yuv.wgsl into `entries` (after its header); returns the bytes
/// that travel each way. `covered` is scratch.
pub fn plan(
    width: u32,
    height: u32,
    rects: impl Iterator<Item = [i32; 4]>,
    covered: &mut Vec<bool>,
    runs: &mut Vec<Run>,
    entries: &mut Vec<u8>,
) -> usize {
    let (w, h) = (width as i64, height as i64);
    let cols = width.div_ceil(TILE_W) as usize;
    let bands = height.div_ceil(TILE_H) as usize;
    covered.clear();
    covered.resize(cols * bands, false);
    for [x, y, rw, rh] in rects {
        let (x0, y0) = (i64::from(x).max(0), i64::from(y).max(0));
        let (x1, y1) = (
            (i64::from(x) + i64::from(rw)).min(w),
            (i64::from(y) + i64::from(rh)).min(h),
        );
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let tw = i64::from(TILE_W);
        let th = i64::from(TILE_H);
        for band in (y0 / th)..=((y1 - 1) / th) {
            for col in (x0 / tw)..=((x1 - 1) / tw) {
                covered[band as usize * cols + col as usize] = true;
            }
        }
    }
    runs.clear();
    entries.clear();
    entries.resize(TILES_HEADER, 0);
    let (tw, th) = (TILE_W as usize, TILE_H as usize);
    let mut offset = 0;
    for band in 0..bands {
        let row = &covered[band * cols..(band + 1) * cols];
        let mut col = 0;
        while col < cols {
            if !row[col] {
                col += 1;
                continue;
            }
            let first = col;
            while col < cols && row[col] {
                col += 1;
            }
            let x = first * tw;
            let y = band * th;
            let run = Run {
                x,
                y,
                w: (col * tw).min(width as usize) - x,
                h: th.min(height as usize - y),
                offset,
            };
            for t in first..col {
                let tile_x = t * tw;
                let fields = [
                    tile_x,
                    y,
                    offset / 4,
                    run.w,
                    tile_x - x,
                    tw.min(width as usize - tile_x),
                    run.h,
                    0,
                ];
                for f in fields {
                    entries.extend_from_slice(&(f as u32).to_le_bytes());
                }
            }
            offset += run.bytes();
            runs.push(run);
        }
    }
    let tiles = ((entries.len() - TILES_HEADER) / TILE_ENTRY) as u32;
    entries[..4].copy_from_slice(&tiles.to_le_bytes());
    offset
}

/// A 128-bit hash of `bytes`: two SipHashes, keyed apart.
pub fn hash128(bytes: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |seed: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        bytes.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pixel a layer covers is in exactly one run, runs lie inside the frame, their blocks
    /// follow one another, and each tile entry points into its run.
    #[test]
    fn the_covered_tiles_hold_every_layer_pixel_once() {
        let (w, h) = (200u32, 90u32);
        let rects = [
            [-10, -5, 30, 20],
            [150, 70, 100, 100],
            [64, 16, 1, 1],
            [300, 0, 5, 5],
        ];
        let (mut covered, mut runs, mut entries) = (Vec::new(), Vec::new(), Vec::new());
        let bytes = plan(
            w,
            h,
            rects.into_iter(),
            &mut covered,
            &mut runs,
            &mut entries,
        );
        let mut hits = vec![0u8; (w * h) as usize];
        let mut offset = 0;
        for r in &runs {
            assert_eq!(r.offset, offset, "{r:?}");
            assert!(r.x + r.w <= w as usize && r.y + r.h <= h as usize, "{r:?}");
            assert!(r.w % 8 == 0 && r.h % 2 == 0, "{r:?}");
            offset += r.bytes();
            for y in r.y..r.y + r.h {
                for x in r.x..r.x + r.w {
                    hits[y * w as usize + x] += 1;
                }
            }
        }
        assert_eq!(bytes, offset);
        for [x, y, rw, rh] in rects {
            for py in y.max(0)..(y + rh).min(h as i32) {
                for px in x.max(0)..(x + rw).min(w as i32) {
                    assert_eq!(hits[(py * w as i32 + px) as usize], 1, "({px}, {py})");
                }
            }
        }
        assert!(hits.iter().all(|&n| n <= 1));
        // Tiles (0,0) from the first layer, (64,16) from the third, and four from the second
        // in two runs: the last column 8 wide, the last band 10 high; words into the blocks.
        assert_eq!(bytes, 1536 + 1536 + 72 * 16 * 3 / 2 + 72 * 10 * 3 / 2);
        let word = |i: usize| u32::from_le_bytes(entries[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(word(0), 6);
        let tiles: Vec<[u32; 8]> = (0..6)
            .map(|t| std::array::from_fn(|f| word(4 + t * 8 + f)))
            .collect();
        assert_eq!(
            tiles,
            [
                [0, 0, 0, 64, 0, 64, 16, 0],
                [64, 16, 384, 64, 0, 64, 16, 0],
                [128, 64, 768, 72, 0, 64, 16, 0],
                [192, 64, 768, 72, 64, 8, 16, 0],
                [128, 80, 1200, 72, 0, 64, 10, 0],
                [192, 80, 1200, 72, 64, 8, 10, 0],
            ]
        );
        // Nothing on the frame: nothing travels.
        let none = plan(
            w,
            h,
            [[500, 500, 10, 10]].into_iter(),
            &mut covered,
            &mut runs,
            &mut entries,
        );
        assert_eq!((none, runs.len()), (0, 0));
    }
}
