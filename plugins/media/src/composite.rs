//! Layer stacking and blend maths: the CPU reference the GPU compositor is checked against.
//!
//! Pure: RGBA8 buffers in, RGBA8 out. An output starts opaque black; layers are drawn in
//! stacking order (z, then the show file's order). A layer's source pixel `s` with alpha
//! `α·opacity = a` combines with what is below, `d`:
//!
//! | mode | result |
//! | --- | --- |
//! | normal | `d·(1−a) + s·a` |
//! | add | `min(1, d + s·a)` |
//! | multiply | `d · (1 − a + s·a)` |
//! | screen | `d + s·a − d·s·a` |
//!
//! Placement ([`Transform`]): the picture fills the output at identity; `scale` sizes it
//! relative to the output, `position` moves its centre in output pixels, `rotation` turns it
//! clockwise about its centre, and `crop` cuts fractions off its edges. Each output pixel
//! centre is mapped back into the clip and takes the texel it lands in (nearest), exactly as
//! the shader does.

use rockontrol_show::{BlendMode, Transform};

use crate::decode::{Yuv, YuvMatrix};

/// How one layer is drawn this refresh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerParams {
    pub opacity: f32,
    pub blend: BlendMode,
    pub transform: Transform,
}

impl LayerParams {
    /// Fully opaque, normal blend, filling the output.
    pub const FULL: LayerParams = LayerParams {
        opacity: 1.0,
        blend: BlendMode::Normal,
        transform: Transform::IDENTITY,
    };
}

/// An RGBA8 picture, rows tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Rgba {
    /// Every pixel `color`.
    pub fn filled(width: u32, height: u32, color: [u8; 4]) -> Self {
        Rgba {
            width,
            height,
            data: color.repeat((width * height) as usize),
        }
    }

    /// The pixel at (`x`, `y`).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }
}

/// The uniform values both compositors derive from a layer's placement on a `w`×`h` output:
/// centre, size, cos and sin of the rotation, crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub center: [f32; 2],
    pub size: [f32; 2],
    pub cos_sin: [f32; 2],
    pub crop: [f32; 4],
}

impl Placement {
    pub fn new(t: &Transform, width: u32, height: u32) -> Self {
        let (w, h) = (width as f32, height as f32);
        let r = (t.rotation as f32).to_radians();
        Placement {
            center: [w / 2.0 + t.position.0 as f32, h / 2.0 + t.position.1 as f32],
            size: [w * t.scale.0 as f32, h * t.scale.1 as f32],
            cos_sin: [r.cos(), r.sin()],
            crop: [
                t.crop.0 as f32,
                t.crop.1 as f32,
                t.crop.2 as f32,
                t.crop.3 as f32,
            ],
        }
    }

    /// The clip coordinate (0..1 each way) the output pixel centre `p` shows, if it is inside
    /// the uncropped picture. The same expression is in `composite.wgsl`.
    pub fn uv(&self, p: [f32; 2]) -> Option<[f32; 2]> {
        let d = [p[0] - self.center[0], p[1] - self.center[1]];
        let [c, s] = self.cos_sin;
        let local = [d[0] * c + d[1] * s, -d[0] * s + d[1] * c];
        let u = local[0] / self.size[0] + 0.5;
        let v = local[1] / self.size[1] + 0.5;
        let [l, t, r, b] = self.crop;
        (u >= l && u < 1.0 - r && v >= t && v < 1.0 - b).then_some([u, v])
    }
}

/// One channel, 0..1: `d` under `s` with coverage `a`.
pub fn blend_channel(mode: BlendMode, d: f32, s: f32, a: f32) -> f32 {
    match mode {
        BlendMode::Normal => d * (1.0 - a) + s * a,
        BlendMode::Add => (d + s * a).min(1.0),
        BlendMode::Multiply => d * (1.0 - a + s * a),
        BlendMode::Screen => d + s * a - d * s * a,
    }
}

fn unorm(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Composites `layers` (bottom first) onto an opaque black `width`×`height` output.
pub fn composite_cpu(width: u32, height: u32, layers: &[(&Rgba, LayerParams)]) -> Rgba {
    let mut out = Rgba::filled(width, height, [0, 0, 0, 255]);
    for (pic, params) in layers {
        if pic.width == 0 || pic.height == 0 {
            continue;
        }
        let place = Placement::new(&params.transform, width, height);
        for y in 0..height {
            for x in 0..width {
                let Some([u, v]) = place.uv([x as f32 + 0.5, y as f32 + 0.5]) else {
                    continue;
                };
                let tx = ((u * pic.width as f32) as u32).min(pic.width - 1);
                let ty = ((v * pic.height as f32) as u32).min(pic.height - 1);
                let s = pic.pixel(tx, ty);
                let a = f32::from(s[3]) / 255.0 * params.opacity;
                let i = ((y * width + x) * 4) as usize;
                for (dst, src) in out.data[i..i + 3].iter_mut().zip(&s[..3]) {
                    let d = f32::from(*dst) / 255.0;
                    *dst = unorm(blend_channel(params.blend, d, f32::from(*src) / 255.0, a));
                }
            }
        }
    }
    out
}

/// The numbers the shader converts Y′CbCr with: `(y_offset, y_scale, c_scale)` for the
/// range, and `(r_cr, g_cb, g_cr, b_cb)` for the matrix:
/// `R = Y + r_cr·Cr`, `G = Y − g_cb·Cb − g_cr·Cr`, `B = Y + b_cb·Cb`, where
/// `Y = (y − y_offset)·y_scale` and `C = (c − 128/255)·c_scale` (all 0..1).
pub fn yuv_coefficients(yuv: Yuv) -> ([f32; 3], [f32; 4]) {
    let (kr, kb) = match yuv.matrix {
        YuvMatrix::Bt709 => (0.2126_f32, 0.0722_f32),
        YuvMatrix::Bt601 => (0.299, 0.114),
    };
    let kg = 1.0 - kr - kb;
    let range = if yuv.full_range {
        [0.0, 1.0, 1.0]
    } else {
        [16.0 / 255.0, 255.0 / 219.0, 255.0 / 224.0]
    };
    let matrix = [
        2.0 * (1.0 - kr),
        2.0 * kb * (1.0 - kb) / kg,
        2.0 * kr * (1.0 - kr) / kg,
        2.0 * (1.0 - kb),
    ];
    (range, matrix)
}

/// One pixel's Y′CbCr bytes as RGB bytes, as the shader converts it.
pub fn yuv_to_rgb(yuv: Yuv, y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let ([y0, ys, cs], [r_cr, g_cb, g_cr, b_cb]) = yuv_coefficients(yuv);
    let mid = 128.0 / 255.0;
    let y = (f32::from(y) / 255.0 - y0) * ys;
    let cb = (f32::from(cb) / 255.0 - mid) * cs;
    let cr = (f32::from(cr) / 255.0 - mid) * cs;
    [
        unorm(y + r_cr * cr),
        unorm(y - g_cb * cb - g_cr * cr),
        unorm(y + b_cb * cb),
    ]
}

/// An NV12 picture (Y plane, then interleaved CbCr at half size) as RGBA: the CPU reference of
/// the shader's conversion (chroma nearest, no interpolation).
pub fn nv12_to_rgba(yuv: Yuv, width: u32, height: u32, data: &[u8]) -> Option<Rgba> {
    let (w, h) = (width as usize, height as usize);
    let cw = w.div_ceil(2);
    let luma = data.get(..w * h)?;
    let chroma = data.get(w * h..w * h + cw * 2 * h.div_ceil(2))?;
    let mut out = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let c = ((y / 2) * cw + x / 2) * 2;
            let [r, g, b] = yuv_to_rgb(yuv, luma[y * w + x], chroma[c], chroma[c + 1]);
            out.extend_from_slice(&[r, g, b, 255]);
        }
    }
    Some(Rgba {
        width,
        height,
        data: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(mode: BlendMode, under: [u8; 4], over: [u8; 4], opacity: f32) -> [u8; 4] {
        let a = Rgba::filled(4, 4, under);
        let b = Rgba::filled(4, 4, over);
        let p = LayerParams {
            opacity,
            blend: mode,
            ..LayerParams::FULL
        };
        composite_cpu(4, 4, &[(&a, LayerParams::FULL), (&b, p)]).pixel(1, 1)
    }

    #[test]
    fn blend_modes_on_known_values() {
        let under = [200, 100, 50, 255];
        let over = [100, 200, 254, 255];
        assert_eq!(
            one(BlendMode::Normal, under, over, 0.5),
            [150, 150, 152, 255]
        );
        assert_eq!(one(BlendMode::Add, under, over, 0.5), [250, 200, 177, 255]);
        // 200 · (1 − .5 + .5·100/255) = 139.2
        assert_eq!(
            one(BlendMode::Multiply, under, over, 0.5),
            [139, 89, 50, 255]
        );
        // 200 + 50 − 200·100/255·.5 = 210.8
        assert_eq!(
            one(BlendMode::Screen, under, over, 0.5),
            [211, 161, 152, 255]
        );
        assert_eq!(
            one(BlendMode::Normal, under, over, 0.0),
            under,
            "opacity 0 shows what is below"
        );
        assert_eq!(
            one(BlendMode::Add, [250, 0, 0, 255], [100, 0, 0, 255], 1.0)[0],
            255,
            "add clamps"
        );
    }

    #[test]
    fn transform_moves_scales_and_crops() {
        let red = Rgba::filled(2, 2, [255, 0, 0, 255]);
        let half = LayerParams {
            transform: Transform {
                scale: (0.5, 0.5),
                position: (-4.0, 0.0),
                ..Transform::IDENTITY
            },
            ..LayerParams::FULL
        };
        let out = composite_cpu(16, 8, &[(&red, half)]);
        // A 8×4 picture centred at (4, 4): x 0..8, y 2..6.
        assert_eq!(out.pixel(0, 2), [255, 0, 0, 255]);
        assert_eq!(out.pixel(7, 5), [255, 0, 0, 255]);
        assert_eq!(out.pixel(8, 4), [0, 0, 0, 255]);
        assert_eq!(out.pixel(3, 1), [0, 0, 0, 255]);
        let cropped = LayerParams {
            transform: Transform {
                crop: (0.5, 0.0, 0.0, 0.0),
                ..Transform::IDENTITY
            },
            ..LayerParams::FULL
        };
        let out = composite_cpu(16, 8, &[(&red, cropped)]);
        assert_eq!(out.pixel(7, 4), [0, 0, 0, 255], "left half cropped away");
        assert_eq!(out.pixel(8, 4), [255, 0, 0, 255], "right half stays put");
    }

    /// BT.709 limited range: black, white and the primaries at their nominal codes.
    #[test]
    fn bt709_limited_range_gives_nominal_colours() {
        let yuv = Yuv::default();
        assert_eq!(yuv_to_rgb(yuv, 16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(yuv, 235, 128, 128), [255, 255, 255]);
        // BT.709 red: Y 63, Cb 102, Cr 240.
        let [r, g, b] = yuv_to_rgb(yuv, 63, 102, 240);
        assert!(r >= 253 && g <= 2 && b <= 2, "red {r} {g} {b}");
        // BT.709 blue: Y 32, Cb 240, Cr 118.
        let [r, g, b] = yuv_to_rgb(yuv, 32, 240, 118);
        assert!(r <= 2 && g <= 2 && b >= 253, "blue {r} {g} {b}");
        let full = Yuv {
            full_range: true,
            ..yuv
        };
        assert_eq!(yuv_to_rgb(full, 255, 128, 128), [255, 255, 255]);
    }

    #[test]
    fn rotation_by_90_degrees_swaps_axes() {
        // A 2×1 picture: left red, right green, filling a 4×4 output, turned clockwise 90°.
        let pic = Rgba {
            width: 2,
            height: 1,
            data: vec![255, 0, 0, 255, 0, 255, 0, 255],
        };
        let p = LayerParams {
            transform: Transform {
                rotation: 90.0,
                ..Transform::IDENTITY
            },
            ..LayerParams::FULL
        };
        let out = composite_cpu(4, 4, &[(&pic, p)]);
        assert_eq!(
            out.pixel(1, 0),
            [255, 0, 0, 255],
            "the left edge is now at the top"
        );
        assert_eq!(
            out.pixel(1, 3),
            [0, 255, 0, 255],
            "the right edge is now at the bottom"
        );
    }
}
