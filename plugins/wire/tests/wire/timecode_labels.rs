//! SMPTE timecode labels and frame counts.

use rockontrol_wire::timecode::{FrameRate, Timecode, TimecodeError, TimecodeField};

const RATES: [FrameRate; 4] = [
    FrameRate::Film24,
    FrameRate::Ebu25,
    FrameRate::Df2997,
    FrameRate::Smpte30,
];

fn tc(hours: u8, minutes: u8, seconds: u8, frames: u8, rate: FrameRate) -> Timecode {
    Timecode {
        hours,
        minutes,
        seconds,
        frames,
        rate,
    }
}

#[test]
fn display_is_hh_mm_ss_ff() {
    assert_eq!(
        tc(1, 2, 3, 4, FrameRate::Ebu25).to_string(),
        "01:02:03:04",
        "zero padded"
    );
    assert_eq!(
        tc(23, 59, 59, 29, FrameRate::Smpte30).to_string(),
        "23:59:59:29",
        "last frame"
    );
    assert_eq!(
        tc(0, 0, 0, 0, FrameRate::Film24).to_string(),
        "00:00:00:00",
        "midnight"
    );
}

/// (label, rate, frames since midnight)
#[test]
fn frame_counts() {
    let cases = [
        (tc(0, 0, 1, 0, FrameRate::Film24), 24),
        (tc(1, 0, 0, 0, FrameRate::Ebu25), 90_000),
        (tc(0, 1, 0, 0, FrameRate::Smpte30), 1_800),
        (tc(23, 59, 59, 23, FrameRate::Film24), 24 * 86_400 - 1),
        // Drop-frame: 00:00:59;29 is followed by 00:01:00;02.
        (tc(0, 0, 59, 29, FrameRate::Df2997), 1_799),
        (tc(0, 1, 0, 2, FrameRate::Df2997), 1_800),
        // ... but every tenth minute keeps frames 0 and 1.
        (tc(0, 10, 0, 0, FrameRate::Df2997), 17_982),
        (tc(0, 10, 0, 1, FrameRate::Df2997), 17_983),
        (tc(0, 11, 0, 2, FrameRate::Df2997), 17_982 + 1_800),
        (tc(1, 0, 0, 0, FrameRate::Df2997), 6 * 17_982),
        (tc(23, 59, 59, 29, FrameRate::Df2997), 24 * 6 * 17_982 - 1),
    ];
    for (label, frames) in cases {
        assert_eq!(
            label.to_frames(),
            frames,
            "{label} at {:?} to frames",
            label.rate
        );
        assert_eq!(
            Timecode::from_frames(frames, label.rate),
            label,
            "frame {frames} at {:?} to label",
            label.rate
        );
    }
}

#[test]
fn every_frame_of_the_day_round_trips() {
    for rate in RATES {
        let mut previous: Option<Timecode> = None;
        for frames in 0..rate.frames_per_day() {
            let label = Timecode::from_frames(frames, rate);
            assert_eq!(
                label.validate(),
                Ok(()),
                "{label} at {rate:?} is a legal label"
            );
            assert_eq!(
                label.to_frames(),
                frames,
                "{label} at {rate:?} counts back to {frames}"
            );
            if let Some(before) = previous {
                assert!(
                    (label.hours, label.minutes, label.seconds, label.frames)
                        > (before.hours, before.minutes, before.seconds, before.frames),
                    "labels increase: {before} then {label} at {rate:?}"
                );
            }
            previous = Some(label);
        }
        assert_eq!(
            Timecode::from_frames(rate.frames_per_day(), rate),
            tc(0, 0, 0, 0, rate),
            "24 hours wrap to midnight at {rate:?}"
        );
    }
}

#[test]
fn validation() {
    let bad = [
        (tc(24, 0, 0, 0, FrameRate::Ebu25), TimecodeField::Hours, 24),
        (
            tc(0, 60, 0, 0, FrameRate::Ebu25),
            TimecodeField::Minutes,
            60,
        ),
        (
            tc(0, 0, 60, 0, FrameRate::Ebu25),
            TimecodeField::Seconds,
            60,
        ),
        (tc(0, 0, 0, 25, FrameRate::Ebu25), TimecodeField::Frames, 25),
        (
            tc(0, 0, 0, 24, FrameRate::Film24),
            TimecodeField::Frames,
            24,
        ),
        (
            tc(0, 0, 0, 30, FrameRate::Smpte30),
            TimecodeField::Frames,
            30,
        ),
        (tc(0, 1, 0, 0, FrameRate::Df2997), TimecodeField::Frames, 0),
        (tc(0, 1, 0, 1, FrameRate::Df2997), TimecodeField::Frames, 1),
    ];
    for (label, field, value) in bad {
        assert_eq!(
            label.validate(),
            Err(TimecodeError { field, value }),
            "{label} at {:?} is not a label",
            label.rate
        );
    }
    for good in [
        tc(0, 1, 0, 0, FrameRate::Smpte30),
        tc(0, 10, 0, 0, FrameRate::Df2997),
        tc(0, 1, 1, 0, FrameRate::Df2997),
        tc(23, 59, 59, 24, FrameRate::Ebu25),
    ] {
        assert_eq!(
            good.validate(),
            Ok(()),
            "{good} at {:?} is a label",
            good.rate
        );
    }
    assert!(
        Timecode::new(0, 0, 0, 25, FrameRate::Ebu25).is_err(),
        "new checks"
    );
}

#[test]
fn rates() {
    let nominal: Vec<u8> = RATES.iter().map(|rate| rate.nominal_fps()).collect();
    assert_eq!(nominal, vec![24, 25, 30, 30], "nominal fps");
    assert!(
        (FrameRate::Df2997.fps() - 29.970_03).abs() < 1e-4,
        "29.97 drop-frame"
    );
    for (value, rate) in RATES.iter().enumerate() {
        assert_eq!(
            usize::from(rate.to_artnet()),
            value,
            "Art-Net Type of {rate:?}"
        );
        assert_eq!(
            FrameRate::from_artnet(value as u8),
            Some(*rate),
            "Type {value}"
        );
    }
    assert_eq!(FrameRate::from_artnet(4), None, "Type 4 is no rate");
}
