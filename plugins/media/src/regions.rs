//! Regions: parts of an output's canvas placed onto a physical display (a wall made of
//! several LED processors or displays, each fed from one rectangle of the canvas).
//!
//! Pure: where each region is drawn on a display, problems with a show's regions, and the
//! CPU reference of what a display shows ([`place_regions`]), which the window test compares
//! with a screenshot. An output without regions fills its display (scaled, nearest).

use rockontrol_show::{LedWallOutput, Region};

use crate::composite::Rgba;

/// One rectangle drawn on a display: canvas pixels `src` (x, y, width, height) shown 1:1 at
/// display pixels `dst` (x, y of the top-left corner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub src: (u32, u32, u32, u32),
    pub dst: (i32, i32),
}

/// The rectangles of `output` on its display: its regions, or the whole canvas at (0, 0)
/// when it has none. Regions that do not fit the canvas are clipped to it (see
/// [`region_problems`] for the warning).
pub fn placements(output: &LedWallOutput) -> Vec<Placed> {
    if output.regions.is_empty() {
        return vec![Placed {
            src: (0, 0, output.width, output.height),
            dst: (0, 0),
        }];
    }
    output
        .regions
        .iter()
        .filter_map(|r| {
            let (x, y, w, h) = r.crop;
            let w = w.min(output.width.saturating_sub(x));
            let h = h.min(output.height.saturating_sub(y));
            (w > 0 && h > 0).then_some(Placed {
                src: (x, y, w, h),
                dst: r.position,
            })
        })
        .collect()
}

/// What is wrong with `output`'s regions, one line each naming the region (empty: none).
pub fn region_problems(output: &LedWallOutput) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in output.regions.iter().enumerate() {
        let Region { name, crop, .. } = r;
        let (x, y, w, h) = *crop;
        if w == 0 || h == 0 {
            out.push(format!(
                "output {:?}, region {name:?}: crop {w}×{h} is empty; give it a width and height",
                output.name
            ));
        } else if u64::from(x) + u64::from(w) > u64::from(output.width)
            || u64::from(y) + u64::from(h) > u64::from(output.height)
        {
            out.push(format!(
                "output {:?}, region {name:?}: crop ({x}, {y}, {w}, {h}) reaches past the {}×{} \
                 canvas; it is clipped",
                output.name, output.width, output.height
            ));
        }
        if output.regions[..i].iter().any(|o| o.name == *name) {
            out.push(format!(
                "output {:?}: two regions are named {name:?}",
                output.name
            ));
        }
    }
    out
}

/// What a `width`×`height` display shows of `canvas` through `placed`: each rectangle copied
/// 1:1, black elsewhere, later rectangles over earlier ones.
pub fn place_regions(canvas: &Rgba, placed: &[Placed], width: u32, height: u32) -> Rgba {
    let mut out = Rgba::filled(width, height, [0, 0, 0, 255]);
    for p in placed {
        let (sx, sy, w, h) = p.src;
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (
                    i64::from(p.dst.0) + i64::from(x),
                    i64::from(p.dst.1) + i64::from(y),
                );
                if dx < 0 || dy < 0 || dx >= i64::from(width) || dy >= i64::from(height) {
                    continue;
                }
                let (cx, cy) = (sx + x, sy + y);
                if cx >= canvas.width || cy >= canvas.height {
                    continue;
                }
                let i = ((dy as u32 * width + dx as u32) * 4) as usize;
                out.data[i..i + 4].copy_from_slice(&canvas.pixel(cx, cy));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rockontrol_show::{Display, FrameRate};

    use super::*;

    fn output(regions: Vec<Region>) -> LedWallOutput {
        LedWallOutput {
            name: "wall".into(),
            node: "n".into(),
            width: 8,
            height: 2,
            rate: FrameRate::whole(60),
            display: Display::Window,
            regions,
        }
    }

    fn region(name: &str, crop: (u32, u32, u32, u32), position: (i32, i32)) -> Region {
        Region {
            name: name.into(),
            crop,
            position,
        }
    }

    /// A canvas whose pixel value is its x, placed as two processors stacked vertically
    /// with their halves swapped: each display pixel holds the canvas x it came from.
    #[test]
    fn two_processors_stacked_show_their_halves() {
        let mut canvas = Rgba::filled(8, 2, [0, 0, 0, 255]);
        for y in 0..2 {
            for x in 0..8 {
                let i = ((y * 8 + x) * 4) as usize;
                canvas.data[i] = x as u8 * 10 + 1;
                canvas.data[i + 1] = y as u8;
            }
        }
        let out = output(vec![
            region("left", (0, 0, 4, 2), (0, 2)),
            region("right", (4, 0, 4, 2), (0, 0)),
        ]);
        assert!(region_problems(&out).is_empty());
        let shown = place_regions(&canvas, &placements(&out), 5, 4);
        // Rows 0–1: the right half (canvas x 4..8); rows 2–3: the left half.
        assert_eq!(shown.pixel(0, 0), [41, 0, 0, 255]);
        assert_eq!(shown.pixel(3, 1), [71, 1, 0, 255]);
        assert_eq!(shown.pixel(0, 2), [1, 0, 0, 255]);
        assert_eq!(shown.pixel(3, 3), [31, 1, 0, 255]);
        assert_eq!(
            shown.pixel(4, 0),
            [0, 0, 0, 255],
            "outside every region: black"
        );
    }

    #[test]
    fn no_regions_is_the_whole_canvas_and_bad_regions_are_named() {
        assert_eq!(
            placements(&output(vec![])),
            vec![Placed {
                src: (0, 0, 8, 2),
                dst: (0, 0)
            }]
        );
        let out = output(vec![
            region("a", (6, 0, 4, 2), (0, 0)),
            region("a", (0, 0, 0, 2), (0, 0)),
        ]);
        let problems = region_problems(&out);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("reaches past the 8×2 canvas"),
            "{problems:?}"
        );
        assert!(problems[1].contains("is empty"), "{problems:?}");
        assert!(
            problems[2].contains("two regions are named \"a\""),
            "{problems:?}"
        );
        assert_eq!(
            placements(&out)[0].src,
            (6, 0, 2, 2),
            "clipped to the canvas"
        );
    }
}
