// One media layer drawn onto an output: placement, crop, opacity and blend mode.
// The maths matches `Placement::uv` and `blend_channel` in composite.rs (the CPU reference);
// the blend state of the pipeline (one per mode) does the "what is below" half.
// NV12 layers are converted here (`yuv_to_rgb` in composite.rs is the CPU reference).

struct Layer {
    // centre.xy, size.xy in output pixels
    place: vec4<f32>,
    // cos, sin of the clockwise rotation; opacity; blend mode (0 normal, 1 add, 2 multiply, 3 screen)
    rot_opacity_mode: vec4<f32>,
    // crop left, top, right, bottom (fractions of the clip)
    crop: vec4<f32>,
    // 1 for NV12 (clip holds Y, chroma CbCr at half size), 0 for RGBA; Y offset, Y scale,
    // chroma scale (the range)
    yuv: vec4<f32>,
    // R = Y + x·Cr, G = Y − y·Cb − z·Cr, B = Y + w·Cb (the matrix)
    coef: vec4<f32>,
};

@group(0) @binding(0) var clip: texture_2d<f32>;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var chroma: texture_2d<f32>;

fn texel_colour(texel: vec2<i32>) -> vec4<f32> {
    if (layer.yuv.x < 0.5) {
        return textureLoad(clip, texel, 0);
    }
    let csize = vec2<i32>(textureDimensions(chroma));
    let c = textureLoad(chroma, min(texel / 2, csize - vec2<i32>(1, 1)), 0).rg;
    let y = (textureLoad(clip, texel, 0).r - layer.yuv.y) * layer.yuv.z;
    let cb = (c.x - 128.0 / 255.0) * layer.yuv.w;
    let cr = (c.y - 128.0 / 255.0) * layer.yuv.w;
    let k = layer.coef;
    let rgb = vec3<f32>(y + k.x * cr, y - k.y * cb - k.z * cr, y + k.w * cb);
    return vec4<f32>(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the output.
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    return vec4<f32>(x, y, 0.0, 1.0);
}

@fragment
fn fs(@builtin(position) p: vec4<f32>) -> @location(0) vec4<f32> {
    let d = p.xy - layer.place.xy;
    let c = layer.rot_opacity_mode.x;
    let s = layer.rot_opacity_mode.y;
    let local = vec2<f32>(d.x * c + d.y * s, -d.x * s + d.y * c);
    let uv = local / layer.place.zw + vec2<f32>(0.5, 0.5);
    let k = layer.crop;
    if (uv.x < k.x || uv.x >= 1.0 - k.z || uv.y < k.y || uv.y >= 1.0 - k.w) {
        discard;
    }
    let size = vec2<i32>(textureDimensions(clip));
    let texel = min(vec2<i32>(uv * vec2<f32>(size)), size - vec2<i32>(1, 1));
    let src = texel_colour(texel);
    let a = src.a * layer.rot_opacity_mode.z;
    let mode = u32(layer.rot_opacity_mode.w);
    if (mode == 2u) {
        // multiply: the blend state computes dst · this
        return vec4<f32>(mix(vec3<f32>(1.0), src.rgb, a), 1.0);
    }
    if (mode == 3u) {
        // screen: this + dst · (1 − this)
        return vec4<f32>(src.rgb * a, 1.0);
    }
    // normal and add: the blend state scales by this alpha
    return vec4<f32>(src.rgb, a);
}
