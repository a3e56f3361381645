//! MIDI timecode (MTC) bytes: quarter frames and full frames, and a decoder for a byte stream.
//!
//! - Quarter frame: `F1 0nnn dddd`, piece `nnn` 0–7: frames low/high nibble, seconds, minutes,
//!   hours (the high nibble of hours carries the rate: 0 = 24, 1 = 25, 2 = 29.97 drop-frame,
//!   3 = 30). Four pieces per frame, so the eight pieces of one label span two frames: the
//!   label is that of the frame in which piece 0 was sent, and a decoder that has read piece
//!   7 is two frames later.
//! - Full frame (a locate, sent after a jump): `F0 7F 7F 01 01 hr mn sc fr F7`.
//!
//! The sender sends quarter frame *q* (counted from show time 0) at the instant frame `q/4`
//! plus `q mod 4` quarters starts; groups of eight start on even frames.

use rockontrol_wire::timecode::{FrameRate, Timecode};

use crate::smpte;

/// Bytes of one quarter-frame message.
pub const QUARTER_FRAME_LEN: usize = 2;
/// Bytes of a full-frame message.
pub const FULL_FRAME_LEN: usize = 10;

/// The MTC rate code (bits 5–6 of the hours byte).
#[must_use]
pub const fn rate_code(rate: FrameRate) -> u8 {
    match rate {
        FrameRate::Film24 => 0,
        FrameRate::Ebu25 => 1,
        FrameRate::Df2997 => 2,
        FrameRate::Smpte30 => 3,
    }
}

fn rate_of_code(code: u8) -> FrameRate {
    match code & 3 {
        0 => FrameRate::Film24,
        1 => FrameRate::Ebu25,
        2 => FrameRate::Df2997,
        _ => FrameRate::Smpte30,
    }
}

/// Quarter-frame message `piece` (0–7) of `tc`.
#[must_use]
pub fn quarter_frame(tc: &Timecode, piece: u8) -> [u8; QUARTER_FRAME_LEN] {
    let piece = piece & 7;
    let nibble = match piece {
        0 => tc.frames & 0x0F,
        1 => (tc.frames >> 4) & 0x01,
        2 => tc.seconds & 0x0F,
        3 => (tc.seconds >> 4) & 0x03,
        4 => tc.minutes & 0x0F,
        5 => (tc.minutes >> 4) & 0x03,
        6 => tc.hours & 0x0F,
        _ => ((tc.hours >> 4) & 0x01) | (rate_code(tc.rate) << 1),
    };
    [0xF1, (piece << 4) | nibble]
}

/// The full-frame (locate) message of `tc`.
#[must_use]
pub fn full_frame(tc: &Timecode) -> [u8; FULL_FRAME_LEN] {
    [
        0xF0,
        0x7F,
        0x7F, // all devices
        0x01, // MIDI time code
        0x01, // full message
        (rate_code(tc.rate) << 5) | (tc.hours & 0x1F),
        tc.minutes,
        tc.seconds,
        tc.frames,
        0xF7,
    ]
}

/// The quarter frames of a show timecode: which message is due when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarterFrames {
    pub timecode: smpte::ShowTimecode,
}

impl QuarterFrames {
    /// Show time at which quarter frame `q` is sent: frame `q / 4` plus `q mod 4` quarters.
    #[must_use]
    pub fn ns_of_quarter(&self, q: u64) -> u64 {
        let (num, den) = smpte::rational(self.timecode.rate);
        let ns = (u128::from(q) * u128::from(den) * 1_000_000_000).div_ceil(4 * u128::from(num));
        ns.min(u128::from(u64::MAX)) as u64
    }

    /// The latest quarter frame due at show time `ns`.
    #[must_use]
    pub fn quarter_at_ns(&self, ns: u64) -> u64 {
        let (num, den) = smpte::rational(self.timecode.rate);
        (u128::from(ns) * 4 * u128::from(num) / (u128::from(den) * 1_000_000_000)) as u64
    }

    /// Quarter frame `q`'s message: piece `q mod 8` of the label of frame `(q − q mod 8) / 4`.
    #[must_use]
    pub fn message(&self, q: u64) -> [u8; QUARTER_FRAME_LEN] {
        let piece = (q % 8) as u8;
        let frame_ns = smpte::ns_of_frame((q - q % 8) / 4, self.timecode.rate);
        quarter_frame(&self.timecode.label_at_ns(frame_ns), piece)
    }
}

/// What a decoder learned from one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtcEvent {
    /// A full frame: the sender is at this label now (a locate; it may be standing still).
    FullFrame(Timecode),
    /// Eight quarter frames in order: the sender is at this label now (two frames after the
    /// label they carried), as of the byte just read.
    Running(Timecode),
}

/// Reads MTC from a stream of MIDI bytes (other messages are skipped).
#[derive(Debug, Default, Clone)]
pub struct MtcDecoder {
    /// The message being read (status byte first).
    message: Vec<u8>,
    /// Nibbles of pieces 0–7, and the next piece expected.
    pieces: [u8; 8],
    next_piece: u8,
}

impl MtcDecoder {
    /// Feeds one byte; returns a timecode when one is complete.
    pub fn push(&mut self, byte: u8) -> Option<MtcEvent> {
        if byte >= 0xF8 {
            return None; // real-time messages may appear anywhere
        }
        if byte & 0x80 != 0 {
            self.message.clear();
            if byte == 0xF0 || byte == 0xF1 {
                self.message.push(byte);
            }
            return None;
        }
        match self.message.first() {
            Some(0xF1) => {
                self.message.clear();
                self.quarter(byte)
            }
            Some(0xF0) => {
                self.message.push(byte);
                if self.message.len() > FULL_FRAME_LEN {
                    self.message.clear();
                }
                None
            }
            _ => None,
        }
        .or_else(|| self.full_frame_if_complete())
    }

    fn full_frame_if_complete(&mut self) -> Option<MtcEvent> {
        // The terminating F7 is a status byte: check the nine data bytes instead.
        if self.message.len() != FULL_FRAME_LEN - 1 {
            return None;
        }
        let m = std::mem::take(&mut self.message);
        // Universal real time (7F), any device id, MTC (01) full message (01).
        if m[1] != 0x7F || m[3..5] != [0x01, 0x01] {
            return None;
        }
        let rate = rate_of_code(m[5] >> 5);
        let tc = Timecode::new(m[5] & 0x1F, m[6], m[7], m[8], rate).ok()?;
        self.next_piece = 0;
        Some(MtcEvent::FullFrame(tc))
    }

    fn quarter(&mut self, data: u8) -> Option<MtcEvent> {
        let piece = data >> 4;
        if piece != self.next_piece {
            // Out of order (a jump, or we joined mid-sequence): wait for the next piece 0.
            self.next_piece = 0;
            if piece != 0 {
                return None;
            }
        }
        self.pieces[usize::from(piece)] = data & 0x0F;
        self.next_piece = (piece + 1) % 8;
        if piece != 7 {
            return None;
        }
        let p = self.pieces;
        let rate = rate_of_code(p[7] >> 1);
        let tc = Timecode::new(
            p[6] | ((p[7] & 1) << 4),
            p[4] | (p[5] << 4),
            p[2] | (p[3] << 4),
            p[0] | (p[1] << 4),
            rate,
        )
        .ok()?;
        // Piece 7 arrives 1¾ frames after piece 0: the sender is two frames on by the next.
        let day = rate.frames_per_day();
        Some(MtcEvent::Running(Timecode::from_frames(
            (tc.to_frames() + 2) % day,
            rate,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(h: u8, m: u8, s: u8, f: u8, rate: FrameRate) -> Timecode {
        Timecode::new(h, m, s, f, rate).expect("valid")
    }

    #[test]
    fn quarter_frames_carry_the_label_and_rate_in_nibbles() {
        let label = tc(1, 2, 3, 4, FrameRate::Ebu25);
        let all: Vec<[u8; 2]> = (0..8).map(|p| quarter_frame(&label, p)).collect();
        assert_eq!(
            all,
            vec![
                [0xF1, 0x04], // frames low nibble: 4
                [0xF1, 0x10], // frames high: 0
                [0xF1, 0x23], // seconds low: 3
                [0xF1, 0x30], // seconds high: 0
                [0xF1, 0x42], // minutes low: 2
                [0xF1, 0x50], // minutes high: 0
                [0xF1, 0x61], // hours low: 1
                [0xF1, 0x72], // hours high 0, rate 1 (25 fps) in bits 1-2
            ]
        );
        let late = tc(23, 59, 59, 29, FrameRate::Df2997);
        assert_eq!(
            quarter_frame(&late, 0),
            [0xF1, 0x0D],
            "29 = 0x1D: low nibble D"
        );
        assert_eq!(quarter_frame(&late, 1), [0xF1, 0x11], "high bit 1");
        assert_eq!(
            quarter_frame(&late, 7),
            [0xF1, 0x75],
            "hours 23 = 0x17: bit 1; rate 2 → 0b101"
        );
    }

    #[test]
    fn full_frame_bytes() {
        assert_eq!(
            full_frame(&tc(1, 2, 3, 4, FrameRate::Smpte30)),
            [0xF0, 0x7F, 0x7F, 0x01, 0x01, 0x61, 0x02, 0x03, 0x04, 0xF7],
            "rate 3 in bits 5-6 of hours: 0x60 | 1"
        );
    }

    #[test]
    fn decoder_reads_full_frames_and_running_quarter_frames_two_frames_on() {
        let mut decoder = MtcDecoder::default();
        let locate = tc(10, 0, 0, 0, FrameRate::Ebu25);
        let events: Vec<MtcEvent> = full_frame(&locate)
            .iter()
            .filter_map(|b| decoder.push(*b))
            .collect();
        assert_eq!(events, vec![MtcEvent::FullFrame(locate)]);
        // Join mid-sequence (pieces 5, 6, 7 first), with a clock byte in between: only the next
        // whole sequence counts.
        let label = tc(10, 0, 0, 2, FrameRate::Ebu25);
        let mut bytes: Vec<u8> = (5..8).flat_map(|p| quarter_frame(&label, p)).collect();
        bytes.push(0xF8);
        bytes.extend((0..8).flat_map(|p| quarter_frame(&label, p)));
        let events: Vec<MtcEvent> = bytes.iter().filter_map(|b| decoder.push(*b)).collect();
        assert_eq!(
            events,
            vec![MtcEvent::Running(tc(10, 0, 0, 4, FrameRate::Ebu25))]
        );
    }

    #[test]
    fn the_show_clock_schedule_sends_each_piece_of_the_even_frame_label() {
        let timecode = smpte::ShowTimecode::new(FrameRate::Ebu25, tc(1, 0, 0, 0, FrameRate::Ebu25));
        let qf = QuarterFrames { timecode };
        assert_eq!(
            qf.ns_of_quarter(1),
            10_000_000,
            "25 fps: a quarter every 10 ms"
        );
        assert_eq!(qf.quarter_at_ns(79_999_999), 7);
        let mut decoder = MtcDecoder::default();
        let mut last = None;
        for q in 0..16 {
            for b in qf.message(q) {
                if let Some(e) = decoder.push(b) {
                    last = Some((q, e));
                }
            }
        }
        // Quarters 8..15 carry frame 2's label (01:00:00:02); read at quarter 15, the decoder
        // says 01:00:00:04, the frame quarter 16 starts.
        assert_eq!(
            last,
            Some((15, MtcEvent::Running(tc(1, 0, 0, 4, FrameRate::Ebu25))))
        );
    }
}
