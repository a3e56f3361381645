//! LTC (SMPTE linear timecode) audio: 80-bit frames, biphase-mark coded, written as samples.
//!
//! Bits, least significant first within each field: frame units 0–3, user 4–7, frame tens 8–9,
//! drop-frame flag 10, colour frame 11, user 12–15, second units 16–19, user 20–23, second tens
//! 24–26, flag 27, user 28–31, minute units 32–35, user 36–39, minute tens 40–42, flag 43,
//! user 44–47, hour units 48–51, user 52–55, hour tens 56–57, flags 58–59, user 60–63, sync
//! word 64–79 (`0011 1111 1111 1101`). The polarity-correction bit (27, or 59 at 25 fps) makes
//! the count of zeros even, so every frame starts on the same level and the waveform is a pure
//! function of the sample index: sample *n* is at show time `n / sample_rate`.
//!
//! Biphase mark: the level flips at the start of every bit, and again mid-bit for a one.

use rockontrol_wire::timecode::{FrameRate, Timecode};

use crate::smpte::{self, ShowTimecode};

/// The 80 bits of one LTC frame, index 0 first.
#[must_use]
pub fn frame_bits(tc: &Timecode) -> [bool; 80] {
    let mut bits = [false; 80];
    let mut put = |start: usize, len: usize, value: u8| {
        for i in 0..len {
            bits[start + i] = (value >> i) & 1 == 1;
        }
    };
    put(0, 4, tc.frames % 10);
    put(8, 2, tc.frames / 10);
    put(10, 1, u8::from(tc.rate.is_drop_frame()));
    put(16, 4, tc.seconds % 10);
    put(24, 3, tc.seconds / 10);
    put(32, 4, tc.minutes % 10);
    put(40, 3, tc.minutes / 10);
    put(48, 4, tc.hours % 10);
    put(56, 2, tc.hours / 10);
    // Sync word 0011 1111 1111 1101 in bits 64–79.
    for (i, b) in [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]
        .iter()
        .enumerate()
    {
        bits[64 + i] = *b == 1;
    }
    let polarity = if tc.rate == FrameRate::Ebu25 { 59 } else { 27 };
    let zeros = bits.iter().filter(|b| !**b).count();
    if zeros % 2 == 1 {
        bits[polarity] = true;
    }
    bits
}

/// Writes a show timecode as LTC samples: sample `n` is at show time `n / sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LtcEncoder {
    pub timecode: ShowTimecode,
    pub sample_rate: u32,
    /// Peak amplitude (LTC is usually sent well below full scale).
    pub amplitude: i16,
}

impl LtcEncoder {
    /// An encoder at `sample_rate` Hz, at half of full scale.
    #[must_use]
    pub fn new(timecode: ShowTimecode, sample_rate: u32) -> Self {
        LtcEncoder {
            timecode,
            sample_rate: sample_rate.max(1),
            amplitude: i16::MAX / 2,
        }
    }

    /// Fills `out` with samples `first..first + out.len()`.
    pub fn fill(&self, first: u64, out: &mut [i16]) {
        let (num, den) = smpte::rational(self.timecode.rate);
        let sr = u128::from(self.sample_rate);
        let mut cached: Option<(u64, [bool; 80])> = None;
        for (i, sample) in out.iter_mut().enumerate() {
            let n = u128::from(first + i as u64);
            // Position in half-bits since show time 0: n / sr seconds × fps × 160.
            let half_bits = n * u128::from(num) * 160 / (sr * u128::from(den));
            let frame = (half_bits / 160) as u64;
            let within = (half_bits % 160) as usize;
            let bits = match cached {
                Some((f, bits)) if f == frame => bits,
                _ => {
                    let label = self
                        .timecode
                        .label_at_ns(smpte::ns_of_frame(frame, self.timecode.rate));
                    let bits = frame_bits(&label);
                    cached = Some((frame, bits));
                    bits
                }
            };
            // Level after the transitions of this frame up to this half-bit: one at every bit
            // start, one mid-bit for each one bit.
            let bit = within / 2;
            let ones_before = bits[..bit].iter().filter(|b| **b).count();
            let mut flips = bit + 1 + ones_before;
            if within % 2 == 1 && bits[bit] {
                flips += 1;
            }
            *sample = if flips % 2 == 1 {
                self.amplitude
            } else {
                -self.amplitude
            };
        }
    }

    /// Samples `first..first + len`.
    #[must_use]
    pub fn samples(&self, first: u64, len: usize) -> Vec<i16> {
        let mut out = vec![0; len];
        self.fill(first, &mut out);
        out
    }

    /// The first sample at or after show time `ns`.
    #[must_use]
    pub fn sample_at_ns(&self, ns: u64) -> u64 {
        (u128::from(ns) * u128::from(self.sample_rate)).div_ceil(1_000_000_000) as u64
    }
}

/// Reads LTC frames out of audio samples (the `ltc` crate's decoder, with labels as
/// [`Timecode`]s).
pub struct LtcReader {
    decoder: ltc::LTCDecoder,
    rate: FrameRate,
}

impl std::fmt::Debug for LtcReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LtcReader")
            .field("rate", &self.rate)
            .finish()
    }
}

impl LtcReader {
    /// A reader for `rate` timecode at `sample_rate` Hz.
    #[must_use]
    pub fn new(rate: FrameRate, sample_rate: u32) -> Self {
        LtcReader {
            decoder: ltc::LTCDecoder::with_capacity(sample_rate as f32 / rate.fps() as f32, 64),
            rate,
        }
    }

    /// Feeds samples (−1.0..1.0); returns the labels of the frames that ended in them, in
    /// order. A frame whose label is not valid at the rate is dropped.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Timecode> {
        if !self.decoder.write_samples(samples) {
            return Vec::new();
        }
        let rate = self.rate;
        (&mut self.decoder)
            .into_iter()
            .filter_map(|f| Timecode::new(f.hour, f.minute, f.second, f.frame, rate).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(h: u8, m: u8, s: u8, f: u8, rate: FrameRate) -> Timecode {
        Timecode::new(h, m, s, f, rate).expect("valid")
    }

    #[test]
    fn frame_bits_follow_the_smpte_layout() {
        let bits = frame_bits(&tc(12, 34, 56, 23, FrameRate::Smpte30));
        let field = |start: usize, len: usize| {
            (0..len).fold(0u8, |v, i| v | (u8::from(bits[start + i]) << i))
        };
        assert_eq!(field(0, 4), 3, "frame units");
        assert_eq!(field(8, 2), 2, "frame tens");
        assert_eq!(field(16, 4), 6, "second units");
        assert_eq!(field(24, 3), 5, "second tens");
        assert_eq!(field(32, 4), 4, "minute units");
        assert_eq!(field(40, 3), 3, "minute tens");
        assert_eq!(field(48, 4), 2, "hour units");
        assert_eq!(field(56, 2), 1, "hour tens");
        assert!(!bits[10], "not drop-frame");
        assert_eq!(field(64, 8), 0b1111_1100, "sync word, first byte LSB first");
        assert_eq!(
            field(72, 8),
            0b1011_1111,
            "sync word, second byte LSB first"
        );
        assert_eq!(bits.iter().filter(|b| !**b).count() % 2, 0, "even zeros");
        assert!(
            frame_bits(&tc(0, 0, 0, 2, FrameRate::Df2997))[10],
            "drop-frame flag"
        );
    }

    #[test]
    fn an_independent_decoder_reads_our_samples() {
        let start = tc(1, 0, 0, 0, FrameRate::Ebu25);
        let encoder = LtcEncoder::new(ShowTimecode::new(FrameRate::Ebu25, start), 48_000);
        let samples: Vec<f32> = encoder
            .samples(0, 48_000 * 2)
            .iter()
            .map(|s| f32::from(*s) / 32_768.0)
            .collect();
        let mut reader = LtcReader::new(FrameRate::Ebu25, 48_000);
        let labels: Vec<String> = samples
            .chunks(480)
            .flat_map(|c| reader.push(c))
            .map(|t| t.to_string())
            .collect();
        assert!(labels.len() >= 45, "about 50 frames in 2 s, got {labels:?}");
        let first = labels
            .iter()
            .position(|l| l == "01:00:00:05")
            .expect("frame 5 read");
        for (i, label) in labels[first..].iter().enumerate() {
            let want = Timecode::from_frames(start.to_frames() + 5 + i as u32, FrameRate::Ebu25);
            assert_eq!(*label, want.to_string(), "consecutive labels");
        }
    }
}
