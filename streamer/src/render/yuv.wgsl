// Part of the GPU renderer (see gpu_compose.rs): the layers, composed over transparency
// (premultiplied colour P, coverage A), go over the background in YUV straight away. BT.601's
// RGB → YUV is affine, so for the background's own YUV (Yb, Ub, Vb):
//   Y = 16·A + 255·dot(Ky, P) + Yb·(1 − A), and likewise U and V around 128,
// which is the conversion of the blended RGB frame without converting the background to RGB and
// back: where no layer covers a pixel, the background comes out exactly as it went in.
//
// Only the tiles some layer covers are uploaded, composed and read back (the rest of the frame
// already is the background). The covered tiles of one band of rows form runs; a run's bytes
// are its Y rows, then its U rows, then its V rows, each row as wide as the run, four samples
// per word. One workgroup per tile, composing in place: each word is read and written by the
// same invocation.

struct Tile {
    // the tile's left column and top row in the frame
    x: u32,
    y: u32,
    // its run's first word in `data`, the run's width in pixels
    off: u32,
    run_w: u32,
    // the tile's left column within the run, its width and its height (pixels)
    run_x: u32,
    w: u32,
    h: u32,
    pad: u32,
};

struct Tiles {
    // x: how many tiles this frame covers
    count: vec4<u32>,
    list: array<Tile>,
};

@group(0) @binding(0) var layers: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read> tiles: Tiles;

const KY = vec3<f32>(0.256788, 0.504129, 0.097906);
const KU = vec3<f32>(-0.148223, -0.290993, 0.439216);
const KV = vec3<f32>(0.439216, -0.367788, -0.071427);
// A tile is 64×16 luma samples: 16 words a row; its chroma 32×8: 8 words a row.
const LUMA_WORDS = 16u;
const CHROMA_WORDS = 8u;

fn byte(v: f32) -> u32 {
    return u32(clamp(round(v), 0.0, 255.0));
}

fn sample(word: u32, k: u32) -> f32 {
    return f32((word >> (8u * k)) & 255u);
}

@compute @workgroup_size(64)
fn cs_tile(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let index = wg.y * groups.x + wg.x;
    if (index >= tiles.count.x) {
        return;
    }
    let t = tiles.list[index];
    // Luma: 16 rows of 16 words, four words per invocation.
    for (var j = 0u; j < 4u; j = j + 1u) {
        let k = li + 64u * j;
        let row = k / LUMA_WORDS;
        let wc = k % LUMA_WORDS;
        if (row >= t.h || wc >= t.w / 4u) {
            continue;
        }
        let at = t.off + row * (t.run_w / 4u) + t.run_x / 4u + wc;
        let bg = data[at];
        var word = 0u;
        for (var s = 0u; s < 4u; s = s + 1u) {
            let xy = vec2<i32>(i32(t.x + wc * 4u + s), i32(t.y + row));
            let l = textureLoad(layers, xy, 0);
            let y = 16.0 * l.a + 255.0 * dot(KY, l.rgb) + sample(bg, s) * (1.0 - l.a);
            word = word | (byte(y) << (8u * s));
        }
        data[at] = word;
    }
    // Chroma: 8 rows of 8 words for U and for V, one word of each per invocation; each sample
    // takes the mean of the layers over its 2×2 block.
    let row = li / CHROMA_WORDS;
    let wc = li % CHROMA_WORDS;
    if (row >= t.h / 2u || wc >= t.w / 8u) {
        return;
    }
    let u_at = t.off + t.h * t.run_w / 4u + row * (t.run_w / 8u) + t.run_x / 8u + wc;
    let v_at = u_at + t.h * t.run_w / 16u;
    let ub = data[u_at];
    let vb = data[v_at];
    var uw = 0u;
    var vw = 0u;
    for (var s = 0u; s < 4u; s = s + 1u) {
        let x = i32(t.x + 8u * wc + 2u * s);
        let y = i32(t.y + 2u * row);
        let l = (textureLoad(layers, vec2<i32>(x, y), 0) + textureLoad(layers, vec2<i32>(x + 1, y), 0)
            + textureLoad(layers, vec2<i32>(x, y + 1), 0) + textureLoad(layers, vec2<i32>(x + 1, y + 1), 0)) * 0.25;
        let u = 128.0 * l.a + 255.0 * dot(KU, l.rgb) + sample(ub, s) * (1.0 - l.a);
        let v = 128.0 * l.a + 255.0 * dot(KV, l.rgb) + sample(vb, s) * (1.0 - l.a);
        uw = uw | (byte(u) << (8u * s));
        vw = vw | (byte(v) << (8u * s));
    }
    data[u_at] = uw;
    data[v_at] = vw;
}
