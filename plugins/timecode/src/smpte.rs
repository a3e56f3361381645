//! SMPTE timecode from show time, exactly.
//!
//! Frame *f* of a timecode starts at show time `ceil(f · den · 10⁹ / num)` ns, where `num/den`
//! is the real frame rate (30000/1001 for 29.97 drop-frame), so the frame at `ns` is
//! `floor(ns · num / (den · 10⁹))`. Labels come from frame counts through the wire crate's
//! exact drop-frame maths ([`Timecode::from_frames`] / [`Timecode::to_frames`]). The show's
//! timecode starts at a label (`01:00:00:00`) at show time 0 and wraps at 24 hours.

use rockontrol_wire::timecode::{FrameRate, Timecode};

pub use rockontrol_wire::timecode::RunningTimecode as ShowTimecode;

/// The real frame rate as a fraction `(num, den)`: 24/1, 25/1, 30000/1001, 30/1.
#[must_use]
pub const fn rational(rate: FrameRate) -> (u64, u64) {
    rate.rational()
}

/// Frames counted from show time 0 at `ns`: `floor(ns · num / (den · 10⁹))`.
#[must_use]
pub fn frame_at_ns(ns: u64, rate: FrameRate) -> u64 {
    rate.frame_at_ns(ns)
}

/// Show time at which frame `frame` starts: `ceil(frame · den · 10⁹ / num)` (saturating).
#[must_use]
pub fn ns_of_frame(frame: u64, rate: FrameRate) -> u64 {
    rate.ns_of_frame(frame)
}

/// Parses `hh:mm:ss:ff` (or `hh:mm:ss;ff`, the drop-frame spelling) at `rate`.
///
/// # Errors
/// A message naming what is wrong: the shape, or the field out of range (a dropped label such as
/// `00:01:00;00` at 29.97 included).
pub fn parse_timecode(text: &str, rate: FrameRate) -> Result<Timecode, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split([':', ';', '.']).collect();
    let [h, m, s, f] = parts.as_slice() else {
        return Err(format!(
            "{text:?} is not a timecode: write hh:mm:ss:ff, e.g. 01:00:00:00"
        ));
    };
    let field = |v: &str, name: &str| {
        v.parse::<u8>()
            .map_err(|_| format!("{text:?}: {name} {v:?} is not a number"))
    };
    Timecode::new(
        field(h, "hours")?,
        field(m, "minutes")?,
        field(s, "seconds")?,
        field(f, "frames")?,
        rate,
    )
    .map_err(|e| format!("{text:?} at {} fps: {e}", rate_name(rate)))
}

/// `24`, `25`, `29.97df`, `30`.
#[must_use]
pub fn rate_name(rate: FrameRate) -> &'static str {
    match rate {
        FrameRate::Film24 => "24",
        FrameRate::Ebu25 => "25",
        FrameRate::Df2997 => "29.97df",
        FrameRate::Smpte30 => "30",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATES: [FrameRate; 4] = [
        FrameRate::Film24,
        FrameRate::Ebu25,
        FrameRate::Df2997,
        FrameRate::Smpte30,
    ];

    #[test]
    fn frames_start_at_exact_nanoseconds() {
        assert_eq!(
            ns_of_frame(1, FrameRate::Ebu25),
            40_000_000,
            "25 fps: 40 ms"
        );
        assert_eq!(
            ns_of_frame(1, FrameRate::Film24),
            41_666_667,
            "24 fps: ceil(10⁹/24)"
        );
        assert_eq!(
            ns_of_frame(30_000, FrameRate::Df2997),
            1_001_000_000_000,
            "29.97: 30000 frames last exactly 1001 s"
        );
        assert_eq!(
            ns_of_frame(1, FrameRate::Df2997),
            33_366_667,
            "1001/30000 s, rounded up"
        );
        assert_eq!(
            frame_at_ns(33_366_666, FrameRate::Df2997),
            0,
            "1 ns before frame 1"
        );
        assert_eq!(
            frame_at_ns(33_366_667, FrameRate::Df2997),
            1,
            "frame 1 starts here"
        );
    }

    #[test]
    fn drop_frame_skips_the_first_two_labels_of_minute_one() {
        let tc = ShowTimecode::new(
            FrameRate::Df2997,
            Timecode::from_frames(0, FrameRate::Df2997),
        );
        // Frame 1799 is 00:00:59;29 and frame 1800 is 00:01:00;02: ;00 and ;01 do not exist.
        let ns = ns_of_frame(1_799, FrameRate::Df2997);
        assert_eq!(tc.label_at_ns(ns).to_string(), "00:00:59:29");
        assert_eq!(
            tc.label_at_ns(ns_of_frame(1_800, FrameRate::Df2997))
                .to_string(),
            "00:01:00:02"
        );
        assert!(
            parse_timecode("00:01:00;00", FrameRate::Df2997).is_err(),
            ";00 is dropped"
        );
        assert!(
            parse_timecode("00:01:00;01", FrameRate::Df2997).is_err(),
            ";01 is dropped"
        );
        assert!(
            parse_timecode("00:10:00;00", FrameRate::Df2997).is_ok(),
            "minute 10 keeps ;00"
        );
        // One hour of drop-frame labels is 3600 s of real time less 3.6 frames' worth: exactly
        // 107 892 frames, 3 599.996 4 s.
        let hour = parse_timecode("01:00:00;00", FrameRate::Df2997).expect("valid");
        assert_eq!(tc.frames_after_start(&hour), 107_892);
        assert_eq!(tc.ns_of_label(&hour), 3_599_996_400_000);
    }

    #[test]
    fn a_start_label_offsets_show_time() {
        let start = parse_timecode("01:00:00:00", FrameRate::Ebu25).expect("valid");
        let tc = ShowTimecode::new(FrameRate::Ebu25, start);
        assert_eq!(tc.label_at_ns(0).to_string(), "01:00:00:00");
        let cue = parse_timecode("01:01:02:10", FrameRate::Ebu25).expect("valid");
        assert_eq!(
            tc.ns_of_label(&cue),
            62_400_000_000,
            "1 min 2 s 10 frames = 62.4 s"
        );
        let before = parse_timecode("00:59:59:24", FrameRate::Ebu25).expect("valid");
        assert_eq!(
            tc.frames_after_start(&before),
            25 * 86_400 - 1,
            "a label before the start is tomorrow's"
        );
    }

    #[test]
    fn bad_labels_are_named() {
        let e = parse_timecode("1:2:3", FrameRate::Ebu25).expect_err("3 fields");
        assert!(e.contains("hh:mm:ss:ff"), "{e}");
        let e = parse_timecode("00:00:00:25", FrameRate::Ebu25).expect_err("25 frames at 25 fps");
        assert!(e.contains("frames 25"), "{e}");
        let e = parse_timecode("00:6x:00:00", FrameRate::Ebu25).expect_err("not a number");
        assert!(e.contains("minutes"), "{e}");
    }

    proptest! {
        #[test]
        fn frame_count_and_label_round_trip(frame in 0u32..24 * 6 * 17_982, which in 0usize..4) {
            let rate = RATES[which];
            let frame = frame % rate.frames_per_day();
            let label = Timecode::from_frames(frame, rate);
            prop_assert!(label.validate().is_ok(), "{label} is a valid label at {rate:?}");
            prop_assert_eq!(label.to_frames(), frame);
            let parsed = parse_timecode(&label.to_string(), rate).expect("own label parses");
            prop_assert_eq!(parsed, label);
        }

        #[test]
        fn show_time_and_frame_round_trip(frame in 0u64..10_000_000, which in 0usize..4) {
            let rate = RATES[which];
            let ns = ns_of_frame(frame, rate);
            prop_assert_eq!(frame_at_ns(ns, rate), frame, "frame starts at its own ns");
            prop_assert_eq!(frame_at_ns(ns.saturating_sub(1), rate), frame.saturating_sub(1));
        }

        #[test]
        fn consecutive_frames_have_consecutive_labels(frame in 0u32..24 * 6 * 17_982 - 1) {
            let rate = FrameRate::Df2997;
            let frame = frame % (rate.frames_per_day() - 1);
            let a = Timecode::from_frames(frame, rate);
            let b = Timecode::from_frames(frame + 1, rate);
            let dropped = b.seconds == 0 && b.frames == 2 && !b.minutes.is_multiple_of(10);
            let expected_gap = if dropped { 3 } else { 1 };
            let labels = |t: Timecode| ((u32::from(t.hours) * 60 + u32::from(t.minutes)) * 60
                + u32::from(t.seconds)) * 30 + u32::from(t.frames);
            prop_assert_eq!(labels(b) - labels(a), expected_gap, "{} → {}", a, b);
        }
    }
}
