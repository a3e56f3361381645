//! Enttec DMX USB Pro: the message framing spoken over its (FTDI) serial port.
//!
//! Every message, either way, is `0x7E, label, length LSB, length MSB, data…, 0xE7` with 0..=600
//! bytes of data (Enttec "DMX USB Pro Widget API Specification" 1.44). The labels used here:
//!
//! - 6, *Output Only Send DMX Packet Request*: data is the start code then the slots. The API
//!   document gives the data size as **25 to 513 bytes**: at least 24 slots, because the widget
//!   repeats the frame continuously and a DMX512 frame must not be shorter than E1.11's minimum
//!   break-to-break time. [`encode_dmx`] therefore pads shorter frames with zero slots up to
//!   [`MIN_DMX_SLOTS`]. (OLA sends whatever length it has; the widget tolerates that, but the pad
//!   keeps us inside the documented range.)
//! - 3, *Get Widget Parameters*: the request carries the size of user configuration data wanted
//!   (LSB first, 0..=508); the reply is firmware version (LSB, MSB), break time and
//!   mark-after-break time (in 10.67 µs units) and output rate (packets/s, 0 = as fast as
//!   possible), then that much user configuration data — see [`WidgetParameters`].
//! - 4, *Set Widget Parameters*: the same fields without the firmware version, LSB-first size.
//! - 5, *Received DMX Packet*: a status byte, then the start code and slots — [`ReceivedDmx`].
//!
//! [`FrameDecoder`] finds frames in a byte stream read from the port (or a pty in tests),
//! resynchronising on garbage.

/// First byte of every message.
pub const START_OF_MESSAGE: u8 = 0x7E;
/// Last byte of every message.
pub const END_OF_MESSAGE: u8 = 0xE7;
/// Largest data length the widget accepts or sends.
pub const MAX_DATA_LEN: usize = 600;
/// Fewest slots the API allows in a label-6 message (25 data bytes with the start code).
pub const MIN_DMX_SLOTS: usize = 24;
/// Most slots in a DMX512 frame.
pub const MAX_DMX_SLOTS: usize = 512;
/// Most user configuration bytes that can be requested or set.
pub const MAX_USER_CONFIG_LEN: usize = 508;
/// Bytes of framing around the data: start, label, two length bytes, end.
pub const FRAMING_LEN: usize = 5;

/// Message labels of the USB Pro API.
pub mod label {
    /// Reprogram Firmware Request.
    pub const REPROGRAM_FIRMWARE: u8 = 1;
    /// Program Flash Page Request / Reply.
    pub const PROGRAM_FLASH_PAGE: u8 = 2;
    /// Get Widget Parameters Request / Reply.
    pub const GET_WIDGET_PARAMETERS: u8 = 3;
    /// Set Widget Parameters Request.
    pub const SET_WIDGET_PARAMETERS: u8 = 4;
    /// Received DMX Packet (widget to host).
    pub const RECEIVED_DMX: u8 = 5;
    /// Output Only Send DMX Packet Request.
    pub const OUTPUT_ONLY_SEND_DMX: u8 = 6;
    /// Send RDM Packet Request.
    pub const SEND_RDM: u8 = 7;
    /// Receive DMX on Change.
    pub const RECEIVE_DMX_ON_CHANGE: u8 = 8;
    /// Received DMX Change Of State Packet (widget to host).
    pub const RECEIVED_DMX_CHANGE_OF_STATE: u8 = 9;
    /// Get Widget Serial Number Request / Reply.
    pub const GET_WIDGET_SERIAL_NUMBER: u8 = 10;
    /// Send RDM Discovery Request.
    pub const SEND_RDM_DISCOVERY: u8 = 11;
}

/// Why a USB Pro message could not be decoded (or encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsbProError {
    /// The buffer ends before the message does.
    #[error("incomplete USB Pro message: need {needed} bytes, have {available}")]
    Incomplete {
        /// Bytes the message needs, as far as the decoder could tell.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    /// A field holds a value the API does not allow.
    #[error("invalid USB Pro {field} at byte {offset}: {value:#x}")]
    Invalid {
        /// Name of the field.
        field: &'static str,
        /// Byte offset of the field (in the frame for framing fields, in the data otherwise).
        offset: usize,
        /// The offending value.
        value: u32,
    },
}

impl UsbProError {
    fn invalid(field: &'static str, offset: usize, value: usize) -> Self {
        Self::Invalid {
            field,
            offset,
            value: u32::try_from(value).unwrap_or(u32::MAX),
        }
    }
}

/// One message: a label and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame<'a> {
    /// What the message is (see [`label`]).
    pub label: u8,
    /// 0..=600 bytes.
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Clears `buf` and writes the framed message into it.
    ///
    /// # Errors
    /// [`UsbProError::Invalid`] if the data is longer than 600 bytes; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), UsbProError> {
        buf.clear();
        if self.data.len() > MAX_DATA_LEN {
            return Err(UsbProError::invalid("data length", 2, self.data.len()));
        }
        buf.reserve(FRAMING_LEN + self.data.len());
        buf.push(START_OF_MESSAGE);
        buf.push(self.label);
        // At most 600: fits.
        buf.extend_from_slice(&(self.data.len() as u16).to_le_bytes());
        buf.extend_from_slice(self.data);
        buf.push(END_OF_MESSAGE);
        Ok(())
    }

    /// Decodes the message that starts at `buf[0]`; returns it and the bytes it took.
    ///
    /// # Errors
    /// [`UsbProError::Incomplete`] if the buffer ends inside the message; [`UsbProError::Invalid`]
    /// if `buf[0]` is not `0x7E`, the length is above 600, or the byte after the data is not
    /// `0xE7`.
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), UsbProError> {
        let incomplete = |needed| UsbProError::Incomplete {
            needed,
            available: buf.len(),
        };
        match buf.first() {
            None => return Err(incomplete(FRAMING_LEN)),
            Some(&START_OF_MESSAGE) => {}
            Some(&other) => {
                return Err(UsbProError::invalid("start of message", 0, other.into()));
            }
        }
        let (label, len) = match buf.get(1..4) {
            Some(&[label, lsb, msb]) => (label, usize::from(u16::from_le_bytes([lsb, msb]))),
            _ => return Err(incomplete(FRAMING_LEN)),
        };
        if len > MAX_DATA_LEN {
            return Err(UsbProError::invalid("data length", 2, len));
        }
        let total = FRAMING_LEN + len;
        let (Some(data), Some(&end)) = (buf.get(4..4 + len), buf.get(4 + len)) else {
            return Err(incomplete(total));
        };
        if end != END_OF_MESSAGE {
            return Err(UsbProError::invalid("end of message", 4 + len, end.into()));
        }
        Ok((Self { label, data }, total))
    }
}

/// Clears `buf` and writes a label-6 *Output Only Send DMX Packet Request*: `start_code` and
/// `slots`, padded with zero slots up to [`MIN_DMX_SLOTS`].
///
/// # Errors
/// [`UsbProError::Invalid`] for more than 512 slots; `buf` is left empty.
pub fn encode_dmx(start_code: u8, slots: &[u8], buf: &mut Vec<u8>) -> Result<(), UsbProError> {
    buf.clear();
    if slots.len() > MAX_DMX_SLOTS {
        return Err(UsbProError::invalid("DMX slot count", 5, slots.len()));
    }
    let count = slots.len().max(MIN_DMX_SLOTS);
    let len = count + 1;
    // Written in place rather than through Frame::encode_into, to avoid a staging buffer.
    buf.reserve(FRAMING_LEN + len);
    buf.push(START_OF_MESSAGE);
    buf.push(label::OUTPUT_ONLY_SEND_DMX);
    buf.extend_from_slice(&(len as u16).to_le_bytes());
    buf.push(start_code);
    buf.extend_from_slice(slots);
    buf.resize(4 + len, 0);
    buf.push(END_OF_MESSAGE);
    Ok(())
}

/// Clears `buf` and writes a label-3 *Get Widget Parameters Request* asking for
/// `user_config_len` bytes of user configuration (0 when only the timing is wanted).
///
/// # Errors
/// [`UsbProError::Invalid`] above 508; `buf` is left empty.
pub fn encode_get_parameters(user_config_len: u16, buf: &mut Vec<u8>) -> Result<(), UsbProError> {
    if usize::from(user_config_len) > MAX_USER_CONFIG_LEN {
        buf.clear();
        return Err(UsbProError::invalid(
            "user configuration size",
            0,
            user_config_len.into(),
        ));
    }
    Frame {
        label: label::GET_WIDGET_PARAMETERS,
        data: &user_config_len.to_le_bytes(),
    }
    .encode_into(buf)
}

/// The widget's output timing, from a label-3 reply or for a label-4 request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WidgetParameters {
    /// Firmware version (reply only; ignored when setting).
    pub firmware_version: u16,
    /// DMX break time in 10.67 µs units, 9..=127.
    pub break_time: u8,
    /// Mark-after-break time in 10.67 µs units, 1..=127.
    pub mab_time: u8,
    /// Output rate in packets per second, 1..=40; 0 = as fast as possible.
    pub rate: u8,
    /// User configuration bytes (0..=508).
    pub user_config: Vec<u8>,
}

impl WidgetParameters {
    /// Decodes the data of a label-3 reply. Values are reported as the widget sent them.
    ///
    /// # Errors
    /// [`UsbProError::Incomplete`] below the 5 fixed bytes.
    pub fn decode(data: &[u8]) -> Result<Self, UsbProError> {
        match data {
            [fw_lsb, fw_msb, break_time, mab_time, rate, user_config @ ..] => Ok(Self {
                firmware_version: u16::from_le_bytes([*fw_lsb, *fw_msb]),
                break_time: *break_time,
                mab_time: *mab_time,
                rate: *rate,
                user_config: user_config.to_vec(),
            }),
            _ => Err(UsbProError::Incomplete {
                needed: 5,
                available: data.len(),
            }),
        }
    }

    /// Clears `buf` and writes a label-4 *Set Widget Parameters Request* with these values
    /// (the firmware version is not part of it).
    ///
    /// # Errors
    /// [`UsbProError::Invalid`] for a break time outside 9..=127, a mark-after-break outside
    /// 1..=127, a rate above 40 or more than 508 bytes of user configuration (offsets are in the
    /// request's data); `buf` is left empty.
    pub fn encode_set_into(&self, buf: &mut Vec<u8>) -> Result<(), UsbProError> {
        buf.clear();
        if self.user_config.len() > MAX_USER_CONFIG_LEN {
            return Err(UsbProError::invalid(
                "user configuration size",
                0,
                self.user_config.len(),
            ));
        }
        if !(9..=127).contains(&self.break_time) {
            return Err(UsbProError::invalid(
                "break time",
                2,
                self.break_time.into(),
            ));
        }
        if !(1..=127).contains(&self.mab_time) {
            return Err(UsbProError::invalid(
                "mark after break time",
                3,
                self.mab_time.into(),
            ));
        }
        if self.rate > 40 {
            return Err(UsbProError::invalid("output rate", 4, self.rate.into()));
        }
        let mut data = [0u8; 5 + MAX_USER_CONFIG_LEN];
        data[..2].copy_from_slice(&(self.user_config.len() as u16).to_le_bytes());
        data[2] = self.break_time;
        data[3] = self.mab_time;
        data[4] = self.rate;
        data[5..5 + self.user_config.len()].copy_from_slice(&self.user_config);
        Frame {
            label: label::SET_WIDGET_PARAMETERS,
            data: &data[..5 + self.user_config.len()],
        }
        .encode_into(buf)
    }
}

/// The data of a label-5 *Received DMX Packet*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceivedDmx<'a> {
    /// 0 = good; bit 0 = the widget's receive queue overflowed, bit 1 = receive overrun.
    pub status: u8,
    /// DMX512 start code.
    pub start_code: u8,
    /// The slots after the start code.
    pub slots: &'a [u8],
}

impl<'a> ReceivedDmx<'a> {
    /// Decodes the data of a label-5 message.
    ///
    /// # Errors
    /// [`UsbProError::Incomplete`] below 2 bytes (status and start code).
    pub fn decode(data: &'a [u8]) -> Result<Self, UsbProError> {
        match data {
            [status, start_code, slots @ ..] => Ok(Self {
                status: *status,
                start_code: *start_code,
                slots,
            }),
            _ => Err(UsbProError::Incomplete {
                needed: 2,
                available: data.len(),
            }),
        }
    }
}

/// Finds messages in a byte stream, e.g. what a serial port read returns in arbitrary pieces.
///
/// Bytes before a start-of-message are skipped; a candidate with a length above 600 or without
/// the end byte where it belongs is treated as a false start (its `0x7E` is skipped and the
/// search resumes at the next byte). Skipped bytes are counted in
/// [`FrameDecoder::discarded_bytes`]. At most one incomplete message (≤ 605 bytes) stays
/// buffered, provided frames are taken after every [`FrameDecoder::push`].
#[derive(Debug, Clone, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    discarded: u64,
}

impl FrameDecoder {
    /// An empty decoder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // Drop what earlier frames consumed before growing the buffer.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the bytes pushed so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let pending = self.buf.get(self.start..).unwrap_or_default();
            let Some(skip) = pending.iter().position(|&b| b == START_OF_MESSAGE) else {
                self.discarded += pending.len() as u64;
                self.start = self.buf.len();
                return None;
            };
            self.discarded += skip as u64;
            self.start += skip;
            match Frame::decode(self.buf.get(self.start..).unwrap_or_default()) {
                Ok((_, taken)) => {
                    let at = self.start;
                    self.start += taken;
                    // Re-borrow after moving `start`: the same bytes `decode` just accepted.
                    let data = self.buf.get(at + 4..at + taken - 1).unwrap_or_default();
                    let label = self.buf.get(at + 1).copied().unwrap_or_default();
                    return Some(Frame { label, data });
                }
                Err(UsbProError::Incomplete { .. }) => return None,
                Err(UsbProError::Invalid { .. }) => {
                    // A false start: skip this 0x7E and look for the next one.
                    self.start += 1;
                    self.discarded += 1;
                }
            }
        }
    }

    /// Bytes skipped so far while looking for messages.
    #[must_use]
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Bytes held for a message not yet complete.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
