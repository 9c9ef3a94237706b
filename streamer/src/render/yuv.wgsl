// Part of the GPU renderer (see gpu_compose.rs): the layers, composed over transparency
// (premultiplied colour P, coverage A), go over the background in YUV straight away. BT.601's
// RGB → YUV is affine, so for the background's own YUV (Yb, Ub, Vb):
//   Y = 16·A + 255·dot(Ky, P) + Yb·(1 − A), and likewise U and V around 128,
// which is the conversion of the blended RGB frame without converting the background to RGB and
// back: where no layer covers a pixel, the background comes out exactly as it went in.

@group(0) @binding(0) var layers: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;
@group(0) @binding(2) var<uniform> dims: vec4<u32>;
@group(0) @binding(3) var bg_y: texture_2d<f32>;
@group(0) @binding(4) var bg_u: texture_2d<f32>;
@group(0) @binding(5) var bg_v: texture_2d<f32>;

const KY = vec3<f32>(0.256788, 0.504129, 0.097906);
const KU = vec3<f32>(-0.148223, -0.290993, 0.439216);
const KV = vec3<f32>(0.439216, -0.367788, -0.071427);

fn byte(v: f32) -> u32 {
    return u32(clamp(round(v), 0.0, 255.0));
}

// Four luma samples per invocation, packed into one word.
@compute @workgroup_size(64)
fn cs_luma(@builtin(global_invocation_id) id: vec3<u32>) {
    let w = dims.x;
    let words = w / 4u;
    if (id.x >= words * dims.y) {
        return;
    }
    let row = id.x / words;
    let col = (id.x % words) * 4u;
    var word = 0u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        let xy = vec2<i32>(i32(col + k), i32(row));
        let l = textureLoad(layers, xy, 0);
        let yb = textureLoad(bg_y, xy, 0).r * 255.0;
        let y = 16.0 * l.a + 255.0 * dot(KY, l.rgb) + yb * (1.0 - l.a);
        word = word | (byte(y) << (8u * k));
    }
    planes[id.x] = word;
}

// Four chroma samples (each the mean of a 2×2 block) per invocation, for U and for V.
@compute @workgroup_size(64)
fn cs_chroma(@builtin(global_invocation_id) id: vec3<u32>) {
    let cw = dims.x / 2u;
    let ch = dims.y / 2u;
    let words = cw / 4u;
    if (id.x >= words * ch) {
        return;
    }
    let row = id.x / words;
    let col = (id.x % words) * 4u;
    var uw = 0u;
    var vw = 0u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        let c = vec2<i32>(i32(col + k), i32(row));
        let x = 2 * c.x;
        let y = 2 * c.y;
        let l = (textureLoad(layers, vec2<i32>(x, y), 0) + textureLoad(layers, vec2<i32>(x + 1, y), 0)
            + textureLoad(layers, vec2<i32>(x, y + 1), 0) + textureLoad(layers, vec2<i32>(x + 1, y + 1), 0)) * 0.25;
        let ub = textureLoad(bg_u, c, 0).r * 255.0;
        let vb = textureLoad(bg_v, c, 0).r * 255.0;
        let u = 128.0 * l.a + 255.0 * dot(KU, l.rgb) + ub * (1.0 - l.a);
        let v = 128.0 * l.a + 255.0 * dot(KV, l.rgb) + vb * (1.0 - l.a);
        uw = uw | (byte(u) << (8u * k));
        vw = vw | (byte(v) << (8u * k));
    }
    let luma_words = dims.x * dims.y / 4u;
    let chroma_words = cw * ch / 4u;
    planes[luma_words + id.x] = uw;
    planes[luma_words + chroma_words + id.x] = vw;
}
