// Part of the GPU compositor (see gpu_compose.rs).

@group(0) @binding(0) var rgba: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;
@group(0) @binding(2) var<uniform> dims: vec4<u32>;

fn to_y(c: vec3<f32>) -> u32 {
    return u32(clamp(round(16.0 + dot(c * 255.0, vec3<f32>(0.256788, 0.504129, 0.097906))), 0.0, 255.0));
}
fn to_u(c: vec3<f32>) -> u32 {
    return u32(clamp(round(128.0 + dot(c * 255.0, vec3<f32>(-0.148223, -0.290993, 0.439216))), 0.0, 255.0));
}
fn to_v(c: vec3<f32>) -> u32 {
    return u32(clamp(round(128.0 + dot(c * 255.0, vec3<f32>(0.439216, -0.367788, -0.071427))), 0.0, 255.0));
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
        let c = textureLoad(rgba, vec2<i32>(i32(col + k), i32(row)), 0).rgb;
        word = word | (to_y(c) << (8u * k));
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
        let x = i32(2u * (col + k));
        let y = i32(2u * row);
        let c = (textureLoad(rgba, vec2<i32>(x, y), 0).rgb + textureLoad(rgba, vec2<i32>(x + 1, y), 0).rgb
            + textureLoad(rgba, vec2<i32>(x, y + 1), 0).rgb + textureLoad(rgba, vec2<i32>(x + 1, y + 1), 0).rgb) * 0.25;
        uw = uw | (to_u(c) << (8u * k));
        vw = vw | (to_v(c) << (8u * k));
    }
    let luma_words = dims.x * dims.y / 4u;
    let chroma_words = cw * ch / 4u;
    planes[luma_words + id.x] = uw;
    planes[luma_words + chroma_words + id.x] = vw;
}
