//! SMPTE timecode (`hh:mm:ss:ff`) and the four frame rates Art-Net carries.
//!
//! Frame counting is exact integer arithmetic. 29.97 fps is drop-frame: frame numbers 0 and 1 are
//! skipped at the start of every minute except minutes 0, 10, 20 … so that the label tracks wall
//! time (17 982 frames per ten minutes instead of 18 000).

use std::fmt;

/// The frame rates of Art-Net's ArtTimeCode "Type" field (values 0–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameRate {
    /// 24 fps (film).
    Film24,
    /// 25 fps (EBU / PAL).
    Ebu25,
    /// 29.97 fps drop-frame (NTSC).
    Df2997,
    /// 30 fps non-drop (SMPTE).
    Smpte30,
}

impl FrameRate {
    /// Frames per labelled second: 24, 25, 30 or 30.
    #[must_use]
    pub const fn nominal_fps(self) -> u8 {
        match self {
            FrameRate::Film24 => 24,
            FrameRate::Ebu25 => 25,
            FrameRate::Df2997 | FrameRate::Smpte30 => 30,
        }
    }

    /// Real frames per second (29.97… = 30000/1001 for drop-frame).
    #[must_use]
    pub fn fps(self) -> f64 {
        match self {
            FrameRate::Df2997 => 30_000.0 / 1_001.0,
            other => f64::from(other.nominal_fps()),
        }
    }

    /// True for 29.97 drop-frame.
    #[must_use]
    pub const fn is_drop_frame(self) -> bool {
        matches!(self, FrameRate::Df2997)
    }

    /// The real frame rate as a fraction `(num, den)`: 24/1, 25/1, 30000/1001, 30/1.
    #[must_use]
    pub const fn rational(self) -> (u64, u64) {
        match self {
            FrameRate::Df2997 => (30_000, 1_001),
            other => (other.nominal_fps() as u64, 1),
        }
    }

    /// Frames counted from time 0 at `ns` nanoseconds: `floor(ns · num / (den · 10⁹))`, exact.
    #[must_use]
    pub fn frame_at_ns(self, ns: u64) -> u64 {
        let (num, den) = self.rational();
        (u128::from(ns) * u128::from(num) / (u128::from(den) * NANOS)) as u64
    }

    /// The nanosecond frame `frame` starts at: `ceil(frame · den · 10⁹ / num)` (saturating).
    #[must_use]
    pub fn ns_of_frame(self, frame: u64) -> u64 {
        let (num, den) = self.rational();
        let ns = (u128::from(frame) * u128::from(den) * NANOS).div_ceil(u128::from(num));
        ns.min(u128::from(u64::MAX)) as u64
    }

    /// Frames from 00:00:00:00 to 24:00:00:00.
    #[must_use]
    pub const fn frames_per_day(self) -> u32 {
        match self {
            FrameRate::Df2997 => 24 * 6 * DF_FRAMES_PER_10_MINUTES,
            other => 24 * 3600 * other.nominal_fps() as u32,
        }
    }

    /// The Art-Net "Type" value: 0 film, 1 EBU, 2 drop-frame, 3 SMPTE.
    #[must_use]
    pub const fn to_artnet(self) -> u8 {
        match self {
            FrameRate::Film24 => 0,
            FrameRate::Ebu25 => 1,
            FrameRate::Df2997 => 2,
            FrameRate::Smpte30 => 3,
        }
    }

    /// Reads an Art-Net "Type" value; `None` for anything above 3.
    #[must_use]
    pub const fn from_artnet(value: u8) -> Option<Self> {
        match value {
            0 => Some(FrameRate::Film24),
            1 => Some(FrameRate::Ebu25),
            2 => Some(FrameRate::Df2997),
            3 => Some(FrameRate::Smpte30),
            _ => None,
        }
    }
}

const NANOS: u128 = 1_000_000_000;
/// 30 fps × 600 s minus 2 frames in each of nine minutes.
const DF_FRAMES_PER_10_MINUTES: u32 = 17_982;
/// 30 fps × 60 s minus the 2 dropped labels.
const DF_FRAMES_PER_DROP_MINUTE: u32 = 1_798;

/// One of the four fields of a [`Timecode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimecodeField {
    /// `hh`.
    Hours,
    /// `mm`.
    Minutes,
    /// `ss`.
    Seconds,
    /// `ff`.
    Frames,
}

impl fmt::Display for TimecodeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimecodeField::Hours => "hours",
            TimecodeField::Minutes => "minutes",
            TimecodeField::Seconds => "seconds",
            TimecodeField::Frames => "frames",
        })
    }
}

/// A field of a [`Timecode`] out of range for its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timecode {field} {value} out of range")]
pub struct TimecodeError {
    /// Which field.
    pub field: TimecodeField,
    /// The value given.
    pub value: u8,
}

/// A SMPTE timecode label. Displays as `hh:mm:ss:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timecode {
    /// 0..=23.
    pub hours: u8,
    /// 0..=59.
    pub minutes: u8,
    /// 0..=59.
    pub seconds: u8,
    /// 0..nominal fps (and not 0 or 1 at a dropped label for drop-frame).
    pub frames: u8,
    /// The frame rate the label counts in.
    pub rate: FrameRate,
}

impl Timecode {
    /// A checked timecode.
    ///
    /// # Errors
    /// [`TimecodeError`] naming the first field out of range.
    pub fn new(
        hours: u8,
        minutes: u8,
        seconds: u8,
        frames: u8,
        rate: FrameRate,
    ) -> Result<Self, TimecodeError> {
        let timecode = Self {
            hours,
            minutes,
            seconds,
            frames,
            rate,
        };
        timecode.validate()?;
        Ok(timecode)
    }

    /// Checks each field against its range; for drop-frame also that the label is not one of the
    /// skipped ones (frames 0 and 1 of a minute not divisible by ten).
    ///
    /// # Errors
    /// [`TimecodeError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), TimecodeError> {
        let check = |field, value: u8, limit: u8| {
            if value < limit {
                Ok(())
            } else {
                Err(TimecodeError { field, value })
            }
        };
        check(TimecodeField::Hours, self.hours, 24)?;
        check(TimecodeField::Minutes, self.minutes, 60)?;
        check(TimecodeField::Seconds, self.seconds, 60)?;
        check(TimecodeField::Frames, self.frames, self.rate.nominal_fps())?;
        if self.rate.is_drop_frame()
            && self.seconds == 0
            && !self.minutes.is_multiple_of(10)
            && self.frames < 2
        {
            return Err(TimecodeError {
                field: TimecodeField::Frames,
                value: self.frames,
            });
        }
        Ok(())
    }

    /// Frames elapsed since 00:00:00:00 at this rate. Fields are not checked: call
    /// [`Timecode::validate`] first if they came from outside.
    #[must_use]
    pub fn to_frames(&self) -> u32 {
        let fps = u32::from(self.rate.nominal_fps());
        let total_minutes = 60 * u32::from(self.hours) + u32::from(self.minutes);
        let labelled =
            (60 * total_minutes + u32::from(self.seconds)) * fps + u32::from(self.frames);
        if self.rate.is_drop_frame() {
            // Two labels skipped in every minute not divisible by ten.
            labelled.saturating_sub(2 * (total_minutes - total_minutes / 10))
        } else {
            labelled
        }
    }

    /// The label of frame `frames` since 00:00:00:00, wrapping at 24 hours as timecode does.
    #[must_use]
    pub fn from_frames(frames: u32, rate: FrameRate) -> Self {
        let frames = frames % rate.frames_per_day();
        let fps = u32::from(rate.nominal_fps());
        let labelled = if rate.is_drop_frame() {
            // Put the skipped labels back: 18 per whole ten minutes, 2 per started minute after
            // the first of the current ten.
            let tens = frames / DF_FRAMES_PER_10_MINUTES;
            let rest = frames % DF_FRAMES_PER_10_MINUTES;
            let minutes_skipped = if rest < 2 {
                0
            } else {
                (rest - 2) / DF_FRAMES_PER_DROP_MINUTE
            };
            frames + 18 * tens + 2 * minutes_skipped
        } else {
            frames
        };
        // Every quotient below is bounded by the modulo above (hours < 24), so the casts are exact.
        Self {
            hours: (labelled / (3600 * fps)) as u8,
            minutes: (labelled / (60 * fps) % 60) as u8,
            seconds: (labelled / fps % 60) as u8,
            frames: (labelled % fps) as u8,
            rate,
        }
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds, self.frames
        )
    }
}

/// A timecode running from a start label at time 0 (a show's timecode: show time 0 is
/// `start`), wrapping at 24 hours. Exact: frame *f* starts at [`FrameRate::ns_of_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunningTimecode {
    /// The rate labels count in.
    pub rate: FrameRate,
    /// Frames since midnight of the label at time 0.
    pub start: u32,
}

impl RunningTimecode {
    /// `rate` timecode that reads `start` at time 0 (its fields are read at `rate`).
    #[must_use]
    pub fn new(rate: FrameRate, start: Timecode) -> Self {
        RunningTimecode {
            rate,
            start: Timecode { rate, ..start }.to_frames() % rate.frames_per_day(),
        }
    }

    /// Frames since midnight of the label at `ns`.
    #[must_use]
    pub fn frames_at_ns(&self, ns: u64) -> u32 {
        let day = u64::from(self.rate.frames_per_day());
        ((u64::from(self.start) + self.rate.frame_at_ns(ns) % day) % day) as u32
    }

    /// The label at `ns`.
    #[must_use]
    pub fn label_at_ns(&self, ns: u64) -> Timecode {
        Timecode::from_frames(self.frames_at_ns(ns), self.rate)
    }

    /// Frames of `label` after the start label (a label before the start is the next day's).
    #[must_use]
    pub fn frames_after_start(&self, label: &Timecode) -> u64 {
        let day = i64::from(self.rate.frames_per_day());
        let frames = i64::from(
            Timecode {
                rate: self.rate,
                ..*label
            }
            .to_frames(),
        );
        (frames - i64::from(self.start)).rem_euclid(day) as u64
    }

    /// The time `label` starts at.
    #[must_use]
    pub fn ns_of_label(&self, label: &Timecode) -> u64 {
        self.rate.ns_of_frame(self.frames_after_start(label))
    }
}
