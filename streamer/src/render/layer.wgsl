// Part of the GPU renderer (see gpu_compose.rs): layers as instanced quads, `batchSize` per
// draw call. Every layer's texture lives in one storage buffer (the texture cache), so one draw
// call can take layers with different textures; the fragment shader samples it by hand with
// the filter of `filterMode` — the same arithmetic as render/filter.rs on the CPU.

struct Inst {
    // x, y, width, height in frame pixels
    rect: vec4<i32>,
    // offset in the texture cache (words), texture width, height, opacity 0–255
    tex: vec4<u32>,
};

struct Frame {
    // frame width, height
    size: vec4<f32>,
    // filter: 0 nearest, 1 linear, 2 cubic
    mode: vec4<u32>,
};

@group(0) @binding(0) var<storage, read> insts: array<Inst>;
@group(0) @binding(1) var<storage, read> texels: array<u32>;
@group(0) @binding(2) var<uniform> frame: Frame;

struct VOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) @interpolate(flat) inst: u32,
};

@vertex
fn vs_layer(@builtin(vertex_index) i: u32, @builtin(instance_index) n: u32) -> VOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let r = vec4<f32>(insts[n].rect);
    let px = r.xy + corners[i] * r.zw;
    var o: VOut;
    o.pos = vec4<f32>(px.x / frame.size.x * 2.0 - 1.0, 1.0 - px.y / frame.size.y * 2.0, 0.0, 1.0);
    o.inst = n;
    return o;
}

fn texel(t: vec4<u32>, x: i32, y: i32) -> vec4<f32> {
    let cx = u32(clamp(x, 0, i32(t.y) - 1));
    let cy = u32(clamp(y, 0, i32(t.z) - 1));
    return unpack4x8unorm(texels[t.x + cy * t.y + cx]);
}

fn cubic(t: f32) -> vec4<f32> {
    let t2 = t * t;
    let t3 = t2 * t;
    return vec4<f32>(
        (-t3 + 2.0 * t2 - t) * 0.5,
        (3.0 * t3 - 5.0 * t2 + 2.0) * 0.5,
        (-3.0 * t3 + 4.0 * t2 + t) * 0.5,
        (t3 - t2) * 0.5,
    );
}

// Where destination pixel `x` of `dst` samples a source of `src` pixels (centres aligned).
fn source_position(x: i32, src: u32, dst: i32) -> f32 {
    return (f32(x) + 0.5) * f32(src) / f32(dst) - 0.5;
}

@fragment
fn fs_layer(v: VOut) -> @location(0) vec4<f32> {
    let inst = insts[v.inst];
    let t = inst.tex;
    let x = i32(floor(v.pos.x)) - inst.rect.x;
    let y = i32(floor(v.pos.y)) - inst.rect.y;
    var c: vec4<f32>;
    switch frame.mode.x {
        case 0u: {
            // Integer arithmetic: no float ties.
            let sx = (2u * u32(x) + 1u) * t.y / (2u * u32(inst.rect.z));
            let sy = (2u * u32(y) + 1u) * t.z / (2u * u32(inst.rect.w));
            c = texel(t, i32(sx), i32(sy));
        }
        case 1u: {
            let fx = source_position(x, t.y, inst.rect.z);
            let fy = source_position(y, t.z, inst.rect.w);
            let x0 = floor(fx);
            let y0 = floor(fy);
            let tx = fx - x0;
            let ty = fy - y0;
            let ix = i32(x0);
            let iy = i32(y0);
            let top = texel(t, ix, iy) * (1.0 - tx) + texel(t, ix + 1, iy) * tx;
            let bottom = texel(t, ix, iy + 1) * (1.0 - tx) + texel(t, ix + 1, iy + 1) * tx;
            c = top * (1.0 - ty) + bottom * ty;
        }
        default: {
            let fx = source_position(x, t.y, inst.rect.z);
            let fy = source_position(y, t.z, inst.rect.w);
            let x0 = floor(fx);
            let y0 = floor(fy);
            let wx = cubic(fx - x0);
            let wy = cubic(fy - y0);
            let ix = i32(x0) - 1;
            let iy = i32(y0) - 1;
            var acc = vec4<f32>(0.0);
            for (var j = 0; j < 4; j = j + 1) {
                let row = texel(t, ix, iy + j) * wx.x + texel(t, ix + 1, iy + j) * wx.y
                    + texel(t, ix + 2, iy + j) * wx.z + texel(t, ix + 3, iy + j) * wx.w;
                acc = acc + row * wy[j];
            }
            c = clamp(acc, vec4<f32>(0.0), vec4<f32>(1.0));
        }
    }
    return vec4<f32>(c.rgb, c.a * f32(t.w) / 255.0);
}
