// Part of the GPU compositor (see gpu_compose.rs).

struct Layer {
    // x, y, width, height in frame pixels
    rect: vec4<f32>,
    // frame width, height, opacity (0–1), unused
    frame: vec4<f32>,
};

@group(0) @binding(0) var<uniform> layer: Layer;
@group(0) @binding(1) var layer_tex: texture_2d<f32>;
@group(0) @binding(2) var layer_sampler: sampler;

struct VOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_layer(@builtin(vertex_index) i: u32) -> VOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let c = corners[i];
    let px = layer.rect.xy + c * layer.rect.zw;
    var o: VOut;
    o.pos = vec4<f32>(px.x / layer.frame.x * 2.0 - 1.0, 1.0 - px.y / layer.frame.y * 2.0, 0.0, 1.0);
    o.uv = c;
    return o;
}

@fragment
fn fs_layer(v: VOut) -> @location(0) vec4<f32> {
    let t = textureSample(layer_tex, layer_sampler, v.uv);
    return vec4<f32>(t.rgb, t.a * layer.frame.z);
}
