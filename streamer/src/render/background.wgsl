// The GPU compositor: background (YUV planes) → RGBA, layers blended over it, RGBA → YUV420P.

@group(0) @binding(0) var bg_y: texture_2d<f32>;
@group(0) @binding(1) var bg_u: texture_2d<f32>;
@group(0) @binding(2) var bg_v: texture_2d<f32>;

@vertex
fn vs_full(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let p = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(p * 2.0 - 1.0, 0.0, 1.0);
}

// BT.601 limited range, as the CPU side and x264 use.
@fragment
fn fs_background(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let xy = vec2<i32>(pos.xy);
    let y = textureLoad(bg_y, xy, 0).r * 255.0;
    let u = textureLoad(bg_u, xy / 2, 0).r * 255.0 - 128.0;
    let v = textureLoad(bg_v, xy / 2, 0).r * 255.0 - 128.0;
    let c = 1.164383 * (y - 16.0);
    let rgb = vec3<f32>(c + 1.596027 * v, c - 0.391762 * u - 0.812968 * v, c + 2.017232 * u);
    // Not clamped: the float target keeps YUV colours outside the RGB gamut, so converting back
    // gives the same YUV.
    return vec4<f32>(rgb / 255.0, 1.0);
}
