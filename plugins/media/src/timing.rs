//! Which content frame a layer shows at a show time: pure integer maths, no I/O.
//!
//! `frame = from + ⌊(t_show − t_start) · speed · fps⌋`, with show time in integer nanoseconds,
//! the clip's rate as an exact fraction ([`FrameRate`]: 29.97 is `30000/1001`) and the speed
//! in parts per million. `t_show` is the show time of the refresh the frame is shown on, never
//! "when the previous frame finished decoding", so every node picks the same frame for the
//! same refresh, and a node that joins late picks the right frame at once.

use rockontrol_show::{EndMode, FrameRate};

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Speed 1.0 in parts per million.
pub const UNIT_SPEED_PPM: u64 = 1_000_000;

/// Seconds (from a show file or a command) to show nanoseconds, rounded to the nearest.
/// Negative or not-a-number times are 0 (the validator refuses them first).
pub fn seconds_to_ns(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * NANOS_PER_SEC as f64).round() as u64
    } else {
        0
    }
}

/// A speed factor (1.0: the clip's own rate) in parts per million, rounded; at least 1.
pub fn speed_ppm(speed: f64) -> u64 {
    if speed.is_finite() && speed > 0.0 {
        ((speed * UNIT_SPEED_PPM as f64).round() as u64).max(1)
    } else {
        UNIT_SPEED_PPM
    }
}

/// The first frame whose time has come `ns` nanoseconds into content at `fps`:
/// `⌊ns · num / (den · 10⁹)⌋`.
pub fn frame_of_ns(ns: u64, fps: FrameRate) -> u64 {
    (u128::from(ns) * u128::from(fps.num) / (u128::from(fps.den) * u128::from(NANOS_PER_SEC)))
        as u64
}

/// When frame `frame` of content at `fps` begins, in nanoseconds: `⌈frame · den · 10⁹ / num⌉`,
/// so that [`frame_of_ns`] of it is `frame` again. Also the show time of refresh `frame` of an
/// output at `fps`.
pub fn ns_of_frame(frame: u64, fps: FrameRate) -> u64 {
    let ns = (u128::from(frame) * u128::from(fps.den) * u128::from(NANOS_PER_SEC))
        .div_ceil(u128::from(fps.num));
    ns.min(u128::from(u64::MAX)) as u64
}

/// The frame whose presentation timestamp is `pts_ns` (the nearest, so a container's rounding
/// of 1001/30000 s timestamps does not move a frame).
pub fn frame_of_pts(pts_ns: u64, fps: FrameRate) -> u64 {
    let scaled = u128::from(pts_ns) * u128::from(fps.num);
    let unit = u128::from(fps.den) * u128::from(NANOS_PER_SEC);
    ((scaled + unit / 2) / unit) as u64
}

/// How a layer plays its clip: from which show time, from which frame, how fast, and what
/// it does after the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Playhead {
    /// Show time at which frame `from` is shown.
    pub start_ns: u64,
    /// The content frame shown at `start_ns` (0 unless a cue starts part-way in).
    pub from: u64,
    /// Speed in parts per million of the clip's own rate.
    pub speed_ppm: u64,
    /// The clip's frame rate.
    pub fps: FrameRate,
    pub end: EndMode,
}

/// What a layer shows at a show time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameChoice {
    /// This content frame.
    Frame(u64),
    /// Nothing yet: the show time is before the playhead's start.
    BeforeStart,
    /// Nothing any more: the clip ended with [`EndMode::Stop`].
    Ended,
}

impl Playhead {
    /// Frame 0 at `start_ns`, at the clip's own speed, holding the last frame.
    pub fn new(start_ns: u64, fps: FrameRate) -> Self {
        Playhead {
            start_ns,
            from: 0,
            speed_ppm: UNIT_SPEED_PPM,
            fps,
            end: EndMode::HoldLast,
        }
    }

    /// Frames advanced (before wrapping) at show time `show_ns`; `None` before the start.
    pub fn raw_frame(&self, show_ns: u64) -> Option<u64> {
        let elapsed = show_ns.checked_sub(self.start_ns)?;
        // elapsed · speed · num / (10⁶ · den · 10⁹), all in u128: no rounding before the floor.
        let n = u128::from(elapsed) * u128::from(self.speed_ppm) * u128::from(self.fps.num);
        let d = u128::from(UNIT_SPEED_PPM) * u128::from(self.fps.den) * u128::from(NANOS_PER_SEC);
        Some(
            self.from
                .saturating_add((n / d).min(u128::from(u64::MAX)) as u64),
        )
    }

    /// The frame shown at `show_ns`, for a clip of `length` frames (`None`: not known yet,
    /// e.g. before the decoder has opened the file; then no end mode applies).
    pub fn frame_at(&self, show_ns: u64, length: Option<u64>) -> FrameChoice {
        let Some(raw) = self.raw_frame(show_ns) else {
            return FrameChoice::BeforeStart;
        };
        match length {
            None => FrameChoice::Frame(raw),
            Some(0) => FrameChoice::Ended,
            Some(n) if raw < n => FrameChoice::Frame(raw),
            Some(n) => match self.end {
                EndMode::Loop => FrameChoice::Frame(raw % n),
                EndMode::HoldLast => FrameChoice::Frame(n - 1),
                EndMode::Stop => FrameChoice::Ended,
            },
        }
    }
}

/// A warning when an output's refresh rate is not a whole multiple of the content's rate
/// (after the layer's speed): frames are then held for an uneven number of refreshes
/// (25 fps on 60 Hz: 2, 3, 2, 3 … — judder).
pub fn cadence_warning(output: FrameRate, content: FrameRate, speed_ppm: u64) -> Option<String> {
    // output / (content · speed) = (on · cd · 10⁶) / (od · cn · speed)
    let n = u128::from(output.num) * u128::from(content.den) * u128::from(UNIT_SPEED_PPM);
    let d = u128::from(output.den) * u128::from(content.num) * u128::from(speed_ppm.max(1));
    (n % d != 0).then(|| {
        let speed = speed_ppm as f64 / UNIT_SPEED_PPM as f64;
        format!(
            "content at {:.3} fps (×{speed}) on a {:.3} Hz output: the output rate is not a whole \
             multiple of the content rate, so frames are held unevenly (judder); use content at \
             a rate that divides the output's",
            content.as_f64(),
            output.as_f64()
        )
    })
}

/// A refresh grid on the show clock: refresh `n` is at `phase_ns + n · period_ns`.
///
/// For an on-screen output it is fitted to the show times the app's frames began
/// ([`RefreshGrid::fit`]): the swapchain paces the loop, so frames begin just after a vblank,
/// and a frame composed now is scanned out at the next one ([`RefreshGrid::scanout_after`]).
/// Without a display (offscreen outputs, or before enough frames were seen) the output's own
/// rate is the grid and a refresh is at its target time ([`rate_refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshGrid {
    pub period_ns: u64,
    /// In `0..period_ns`.
    pub phase_ns: u64,
}

/// Frames a fit needs at least.
pub const MIN_FIT_FRAMES: usize = 8;

impl RefreshGrid {
    /// Fits a grid to increasing frame times that jitter around it, with frames that took
    /// two or more periods (skipped vblanks) among them: the period is first the median
    /// spacing, each frame then gets its vblank number, and the period is refined by least
    /// squares over those numbers; the phase is the median residual, so a few outliers do not
    /// move it. `None` with fewer than [`MIN_FIT_FRAMES`] frames or no spacing.
    pub fn fit(times: &[u64]) -> Option<RefreshGrid> {
        if times.len() < MIN_FIT_FRAMES {
            return None;
        }
        let mut gaps: Vec<u64> = times
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .filter(|g| *g > 0)
            .collect();
        if gaps.len() < 2 {
            return None;
        }
        gaps.sort_unstable();
        let rough = gaps[gaps.len() / 2] as f64;
        let t0 = times[0];
        // Vblank numbers counted gap by gap with the rough period (a gap's jitter is well
        // under half a period; counting from t0 would let the rough period's error add up),
        // then the least-squares period over them.
        let mut vblank = 0.0;
        let mut points: Vec<(f64, f64)> = vec![(0.0, 0.0)];
        for w in times.windows(2) {
            vblank += (w[1].saturating_sub(w[0]) as f64 / rough).round();
            points.push((vblank, w[1].saturating_sub(t0) as f64));
        }
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let period = if sxx > 0.0 { sxy / sxx } else { rough };
        if !(period.is_finite() && period >= 1.0) {
            return None;
        }
        // Residuals from the fitted line, wrapped into (-period/2, period/2].
        let intercept = mean_y - period * mean_x;
        let mut residuals: Vec<f64> = points
            .iter()
            .map(|(x, y)| {
                let r = (y - intercept - x * period) % period;
                if r > period / 2.0 {
                    r - period
                } else if r <= -period / 2.0 {
                    r + period
                } else {
                    r
                }
            })
            .collect();
        residuals.sort_by(f64::total_cmp);
        let offset = residuals[residuals.len() / 2];
        let period_ns = period.round() as u64;
        // The phase of the integer grid through the fitted vblank nearest the first frame
        // (exact there; a period error adds up only with the distance from the frames seen).
        let anchor = (t0 as f64 + intercept + offset).round().max(0.0) as u64;
        let phase = anchor % period_ns.max(1);
        Some(RefreshGrid {
            period_ns,
            phase_ns: phase,
        })
    }

    /// The grid point nearest `t_ns`: its number and show time.
    pub fn nearest(&self, t_ns: u64) -> (u64, u64) {
        let p = self.period_ns.max(1);
        let since = t_ns.saturating_sub(self.phase_ns);
        let n = (since + p / 2) / p;
        (n, self.phase_ns + n * p)
    }

    /// The predicted scanout of a frame composed at `now_ns` (which began on a vblank, give
    /// or take the jitter): the vblank after the one the frame began on. Its number and show
    /// time.
    pub fn scanout_after(&self, now_ns: u64) -> (u64, u64) {
        let (n, t) = self.nearest(now_ns);
        (n + 1, t + self.period_ns.max(1))
    }
}

/// The refresh of an output at `rate` that show time `now_ns` falls in, and its target time
/// (the grid without a display): `k = ⌊now · rate⌋`, `t_k = ⌈k / rate⌉`.
pub fn rate_refresh(now_ns: u64, rate: FrameRate) -> (u64, u64) {
    let k = frame_of_ns(now_ns, rate);
    (k, ns_of_frame(k, rate))
}

/// Refreshes of a grid of period `period_ns` that fell strictly between two composed ones
/// at `prev_ns` and `t_ns` (none were composed for them: the node presented slower than the
/// grid), rounding the spacing to whole periods.
pub fn refreshes_skipped(prev_ns: u64, t_ns: u64, period_ns: u64) -> u64 {
    let p = period_ns.max(1);
    let spacing = t_ns.saturating_sub(prev_ns);
    ((spacing + p / 2) / p).saturating_sub(1)
}

/// Per-layer counts of what each refresh showed, for status and heartbeats.
///
/// - **shown**: the refresh showed the frame the show clock chose.
/// - **late**: that frame was not decoded in time, and an earlier one stood in (the composite
///   never waits for the decoder).
/// - **missed**: no frame of the clip at all was ready (the layer showed nothing new), or
///   the refresh was never composed (the node presented slower than its refresh grid); the
///   latter are also counted in **skipped**.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameStats {
    pub shown: u64,
    pub late: u64,
    pub missed: u64,
    #[serde(default)]
    pub skipped: u64,
}

impl FrameStats {
    /// Counts one refresh that wanted `wanted` and had `ready` (the newest decoded frame
    /// at or before it, if any).
    pub fn record(&mut self, wanted: u64, ready: Option<u64>) {
        match ready {
            Some(f) if f == wanted => self.shown += 1,
            Some(_) => self.late += 1,
            None => self.missed += 1,
        }
    }

    /// Counts `n` refreshes that were never composed (missed, and skipped).
    pub fn record_skipped(&mut self, n: u64) {
        self.missed += n;
        self.skipped += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NTSC: FrameRate = FrameRate::NTSC;

    #[test]
    fn ntsc_frames_fall_on_exact_1001_boundaries() {
        let p = Playhead::new(0, NTSC);
        // Frame 30 begins at 30 · 1001/30000 s = 1.001 s exactly.
        assert_eq!(p.frame_at(1_000_999_999, None), FrameChoice::Frame(29));
        assert_eq!(p.frame_at(1_001_000_000, None), FrameChoice::Frame(30));
        // One hour of 29.97 is 107892.107… frames: no drift from a float rate.
        assert_eq!(
            p.frame_at(3600 * NANOS_PER_SEC, None),
            FrameChoice::Frame(107_892)
        );
        assert_eq!(ns_of_frame(30, NTSC), 1_001_000_000);
    }

    #[test]
    fn start_offset_speed_and_end_modes() {
        let mut p = Playhead::new(2 * NANOS_PER_SEC, FrameRate::whole(25));
        assert_eq!(
            p.frame_at(NANOS_PER_SEC, Some(50)),
            FrameChoice::BeforeStart
        );
        assert_eq!(
            p.frame_at(2 * NANOS_PER_SEC, Some(50)),
            FrameChoice::Frame(0)
        );
        // 2.5 s after start at 25 fps: frame 62 of a 50-frame clip.
        let t = 4_500_000_000;
        assert_eq!(p.frame_at(t, Some(50)), FrameChoice::Frame(49), "hold last");
        p.end = EndMode::Loop;
        assert_eq!(
            p.frame_at(t, Some(50)),
            FrameChoice::Frame(12),
            "loop: 62 mod 50"
        );
        p.end = EndMode::Stop;
        assert_eq!(p.frame_at(t, Some(50)), FrameChoice::Ended);
        p.end = EndMode::HoldLast;
        p.speed_ppm = speed_ppm(0.5);
        p.from = 10;
        // Half speed from frame 10: 1 s after start is 12.5 frames on.
        assert_eq!(
            p.frame_at(3 * NANOS_PER_SEC, Some(50)),
            FrameChoice::Frame(22)
        );
    }

    #[test]
    fn pts_rounding_finds_the_frame() {
        // An MP4 with timescale 90000 stores frame 1 of 29.97 at 3003/90000 s = 33366666.6 ns.
        assert_eq!(frame_of_pts(33_366_666, NTSC), 1);
        assert_eq!(frame_of_pts(33_366_667, NTSC), 1);
        assert_eq!(frame_of_pts(0, NTSC), 0);
    }

    #[test]
    fn cadence_warns_for_25_on_60_and_not_for_30_on_60() {
        assert!(
            cadence_warning(FrameRate::whole(60), FrameRate::whole(25), UNIT_SPEED_PPM).is_some()
        );
        assert!(
            cadence_warning(FrameRate::whole(60), FrameRate::whole(30), UNIT_SPEED_PPM).is_none()
        );
        let ntsc60 = FrameRate {
            num: 60000,
            den: 1001,
        };
        assert!(cadence_warning(ntsc60, NTSC, UNIT_SPEED_PPM).is_none());
        assert!(cadence_warning(FrameRate::whole(60), NTSC, UNIT_SPEED_PPM).is_some());
        // 30 fps content at double speed is 60 fps: fine on 60 Hz.
        assert!(
            cadence_warning(FrameRate::whole(60), FrameRate::whole(30), speed_ppm(2.0)).is_none()
        );
    }

    #[test]
    fn stats_count_late_and_missed() {
        let mut s = FrameStats::default();
        s.record(5, Some(5));
        s.record(6, Some(5));
        s.record(7, None);
        assert_eq!(
            s,
            FrameStats {
                shown: 1,
                late: 1,
                missed: 1,
                skipped: 0,
            }
        );
        s.record_skipped(2);
        assert_eq!((s.missed, s.skipped), (3, 2));
    }

    /// A small deterministic generator (no randomness in tests): xorshift.
    fn jitter(state: &mut u64, amplitude: u64) -> i64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % (2 * amplitude + 1)) as i64 - amplitude as i64
    }

    #[test]
    fn a_jittery_60_hz_display_gives_a_stable_grid_and_scanout() {
        // 59.94 Hz (16 683 350 ns), vblanks at 3.2 ms + n·period; frames begin up to ±2 ms
        // off their vblank, and every 10th frame took two periods (a vblank skipped).
        let period = 16_683_350u64;
        let phase = 3_200_000u64;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut times = Vec::new();
        let mut n = 600u64;
        for i in 0..64 {
            n += if i % 10 == 9 { 2 } else { 1 };
            let t = (phase + n * period) as i64 + jitter(&mut rng, 2_000_000);
            times.push(t as u64);
        }
        let grid = RefreshGrid::fit(&times).expect("a grid");
        assert!(
            grid.period_ns.abs_diff(period) < 20_000,
            "period {} vs {period}",
            grid.period_ns
        );
        // The grid lies on the true vblanks where the frames were seen.
        for m in [601u64, 640, 672] {
            let vblank = phase + m * period;
            let (_, t) = grid.nearest(vblank);
            assert!(t.abs_diff(vblank) < 700_000, "vblank {m}: {t} vs {vblank}");
        }
        // Every frame composed after a jittery start is predicted onto the next vblank.
        for m in 700..760u64 {
            let began = (phase + m * period) as i64 + jitter(&mut rng, 2_000_000);
            let (k, t) = grid.scanout_after(began as u64);
            assert_eq!(k, m + 1, "frame beginning at {began}");
            assert!(t.abs_diff(phase + (m + 1) * period) < 1_000_000, "{t}");
        }
        // Refitting on later frames (a sliding window) predicts the same vblanks.
        let later = RefreshGrid::fit(&times[8..]).expect("a grid");
        for m in 700..760u64 {
            let at = phase + m * period;
            assert_eq!(later.scanout_after(at).0, grid.scanout_after(at).0);
        }
    }

    #[test]
    fn too_few_frames_fit_no_grid() {
        assert_eq!(RefreshGrid::fit(&[1, 2, 3]), None);
        assert_eq!(RefreshGrid::fit(&[5; 10]), None, "no spacing");
    }

    #[test]
    fn the_rate_grid_and_skipped_refreshes() {
        let r = FrameRate::whole(25);
        assert_eq!(rate_refresh(79_999_999, r), (1, 40_000_000));
        assert_eq!(rate_refresh(80_000_000, r), (2, 80_000_000));
        // Composed at refreshes 2 and 5 of 40 ms: 3 and 4 were skipped.
        assert_eq!(refreshes_skipped(80_000_000, 200_000_000, 40_000_000), 2);
        assert_eq!(refreshes_skipped(80_000_000, 120_000_000, 40_000_000), 0);
        // A jittery display: 1.4 periods apart is the next vblank, 1.6 skips one.
        assert_eq!(refreshes_skipped(0, 23_000_000, 16_666_667), 0);
        assert_eq!(refreshes_skipped(0, 27_000_000, 16_666_667), 1);
    }

    proptest! {
        /// The frame at a frame's own start time is that frame, and just before it the one
        /// before: for any rate, start and frame number.
        #[test]
        fn a_frame_starts_exactly_at_its_time(
            num in 1u32..=240_000, den in prop_oneof![Just(1u32), Just(1001u32), 1u32..=1000],
            start in 0u64..=86_400 * NANOS_PER_SEC, frame in 1u64..=1_000_000,
        ) {
            let fps = FrameRate::new(num, den).expect("non-zero");
            let p = Playhead::new(start, fps);
            let at = start + ns_of_frame(frame, fps);
            prop_assert_eq!(p.frame_at(at, None), FrameChoice::Frame(frame));
            prop_assert_eq!(p.frame_at(at - 1, None), FrameChoice::Frame(frame - 1));
        }

        /// Looping always gives a frame inside the clip, and hold-last never passes its end.
        #[test]
        fn end_modes_stay_inside_the_clip(t in 0u64..=10_000 * NANOS_PER_SEC, len in 1u64..=5000) {
            let mut p = Playhead::new(0, NTSC);
            p.end = EndMode::Loop;
            let FrameChoice::Frame(f) = p.frame_at(t, Some(len)) else { panic!("a frame") };
            prop_assert!(f < len);
            p.end = EndMode::HoldLast;
            let FrameChoice::Frame(h) = p.frame_at(t, Some(len)) else { panic!("a frame") };
            prop_assert!(h < len);
            prop_assert!(h >= f);
        }
    }
}
