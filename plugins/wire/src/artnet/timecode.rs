//! ArtTimeCode (OpTimeCode 0x9700).

use super::{ArtNetError, OP_TIME_CODE, byte, check_header, put_header};
use crate::timecode::{FrameRate, Timecode, TimecodeError, TimecodeField};

const STREAM_ID: usize = 13;
const FRAMES: usize = 14;
const SECONDS: usize = 15;
const MINUTES: usize = 16;
const HOURS: usize = 17;
const TYPE: usize = 18;
const LEN: usize = 19;

/// ArtTimeCode: one timecode label, sent once per frame by a timecode master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArtTimeCode {
    /// Which timecode stream; 0 is the master.
    pub stream_id: u8,
    /// The label and its rate (the "Type" field).
    pub timecode: Timecode,
}

impl ArtTimeCode {
    /// Bytes of an ArtTimeCode.
    pub const LEN: usize = LEN;

    /// Clears `buf` and writes the 19-byte packet into it.
    ///
    /// # Errors
    /// [`ArtNetError::Invalid`] if the timecode is out of range for its rate; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), ArtNetError> {
        buf.clear();
        let tc = &self.timecode;
        tc.validate().map_err(invalid_timecode)?;
        buf.reserve(LEN);
        put_header(buf, OP_TIME_CODE);
        buf.push(0); // Filler1
        buf.push(self.stream_id);
        buf.push(tc.frames);
        buf.push(tc.seconds);
        buf.push(tc.minutes);
        buf.push(tc.hours);
        buf.push(tc.rate.to_artnet());
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`ArtTimeCode::encode_into`].
    pub fn encode(&self) -> Result<Vec<u8>, ArtNetError> {
        let mut buf = Vec::with_capacity(LEN);
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Decodes an ArtTimeCode, checking every field against its range for the rate given.
    ///
    /// # Errors
    /// [`ArtNetError::Incomplete`] below 19 bytes; [`ArtNetError::Invalid`] for a wrong ID,
    /// OpCode or ProtVer, a Type above 3, or a field out of range (frames ≥ fps, seconds ≥ 60 …).
    pub fn decode(buf: &[u8]) -> Result<Self, ArtNetError> {
        check_header(buf, OP_TIME_CODE, true, LEN)?;
        // Filler1 (byte 12) is ignored by receivers.
        let stream_id = byte(buf, STREAM_ID)?;
        let type_byte = byte(buf, TYPE)?;
        let rate = FrameRate::from_artnet(type_byte)
            .ok_or(ArtNetError::invalid("Type", TYPE, type_byte))?;
        let timecode = Timecode {
            hours: byte(buf, HOURS)?,
            minutes: byte(buf, MINUTES)?,
            seconds: byte(buf, SECONDS)?,
            frames: byte(buf, FRAMES)?,
            rate,
        };
        timecode.validate().map_err(invalid_timecode)?;
        Ok(Self {
            stream_id,
            timecode,
        })
    }
}

/// Names a timecode field the way the Art-Net spec does, at its offset in the packet.
fn invalid_timecode(error: TimecodeError) -> ArtNetError {
    let (field, offset) = match error.field {
        TimecodeField::Hours => ("Hours", HOURS),
        TimecodeField::Minutes => ("Minutes", MINUTES),
        TimecodeField::Seconds => ("Seconds", SECONDS),
        TimecodeField::Frames => ("Frames", FRAMES),
    };
    ArtNetError::invalid(field, offset, error.value)
}
