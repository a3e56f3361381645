//! Art-Net 4 (Artistic Licence): the packets a console and a media server need.
//!
//! Every Art-Net packet starts with the 8-byte ID `"Art-Net\0"` and a 16-bit OpCode sent
//! **little-endian**; most then carry the protocol version **big-endian** (`ProtVerHi`,
//! `ProtVerLo` = 14). Other multi-byte fields are big-endian unless the field name says "Lo"
//! first (the ArtPollReply port and ESTA code).
//!
//! - [`ArtDmx`] (OpDmx 0x5000), [`ArtSync`] (OpSync 0x5200), [`ArtPoll`] (OpPoll 0x2000),
//!   [`ArtPollReply`] (OpPollReply 0x2100), [`ArtTimeCode`] (OpTimeCode 0x9700).
//! - [`decode`] dispatches on the OpCode; each packet type also has its own `decode`.
//! - [`PortAddress`]: the 15-bit Net / Sub-Net / Universe address of a DMX port.
//!
//! Receivers accept any protocol version ≥ 14 and packets longer than they know (later revisions
//! append fields); they reject a shorter version (the spec says to ignore nodes below 14).

mod dmx;
mod error;
mod poll;
mod port_address;
mod timecode;

pub use dmx::{ArtDmx, ArtSync};
pub use error::ArtNetError;
pub use poll::{ArtPoll, ArtPollReply};
pub use port_address::PortAddress;
pub use timecode::ArtTimeCode;

/// UDP port of all Art-Net traffic (0x1936).
pub const PORT: u16 = 6454;
/// The packet ID every Art-Net packet starts with.
pub const ID: [u8; 8] = *b"Art-Net\0";
/// The protocol version we send, and the lowest we accept.
pub const PROTOCOL_VERSION: u16 = 14;

/// OpCode of ArtPoll.
pub const OP_POLL: u16 = 0x2000;
/// OpCode of ArtPollReply.
pub const OP_POLL_REPLY: u16 = 0x2100;
/// OpCode of ArtDmx (also called OpOutput).
pub const OP_DMX: u16 = 0x5000;
/// OpCode of ArtSync.
pub const OP_SYNC: u16 = 0x5200;
/// OpCode of ArtTimeCode.
pub const OP_TIME_CODE: u16 = 0x9700;

/// Byte offset of the OpCode.
const OPCODE: usize = 8;
/// Byte offset of ProtVerHi.
const PROT_VER: usize = 10;
/// ID + OpCode + ProtVer: the shortest packet that carries a protocol version.
const HEADER_LEN: usize = 12;

/// Any Art-Net packet this crate understands, as returned by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArtPacket<'a> {
    /// DMX data for one port-address.
    Dmx(ArtDmx<'a>),
    /// Output the ArtDmx held so far.
    Sync(ArtSync),
    /// Discovery request.
    Poll(ArtPoll),
    /// Discovery reply (boxed: 200+ bytes of fields).
    PollReply(Box<ArtPollReply>),
    /// Timecode.
    TimeCode(ArtTimeCode),
}

/// Decodes one Art-Net datagram, dispatching on its OpCode.
///
/// # Errors
/// [`ArtNetError::Unsupported`] for a well-formed header with an OpCode this crate does not
/// decode (ArtAddress, RDM …: a receiver ignores those quietly); otherwise as the decoder of
/// the packet type.
pub fn decode(buf: &[u8]) -> Result<ArtPacket<'_>, ArtNetError> {
    check_id(buf)?;
    let opcode = le_u16(buf, OPCODE)?;
    match opcode {
        OP_DMX => ArtDmx::decode(buf).map(ArtPacket::Dmx),
        OP_SYNC => ArtSync::decode(buf).map(ArtPacket::Sync),
        OP_POLL => ArtPoll::decode(buf).map(ArtPacket::Poll),
        OP_POLL_REPLY => {
            ArtPollReply::decode(buf).map(|reply| ArtPacket::PollReply(Box::new(reply)))
        }
        OP_TIME_CODE => ArtTimeCode::decode(buf).map(ArtPacket::TimeCode),
        opcode => Err(ArtNetError::Unsupported { opcode }),
    }
}

/// Checks the ID on the bytes present (a short datagram that is not Art-Net reads as invalid,
/// not incomplete).
fn check_id(buf: &[u8]) -> Result<(), ArtNetError> {
    for (index, (&got, &want)) in buf.iter().zip(&ID).enumerate() {
        if got != want {
            return Err(ArtNetError::invalid("ID", index, got));
        }
    }
    if buf.len() < ID.len() {
        return Err(ArtNetError::incomplete(buf, ID.len()));
    }
    Ok(())
}

/// Checks ID, OpCode and (where the packet has one) ProtVer, then that `min_len` bytes are there.
fn check_header(
    buf: &[u8],
    opcode: u16,
    has_protocol_version: bool,
    min_len: usize,
) -> Result<(), ArtNetError> {
    check_id(buf)?;
    let got = le_u16(buf, OPCODE)?;
    if got != opcode {
        return Err(ArtNetError::invalid("OpCode", OPCODE, got));
    }
    if has_protocol_version {
        let version = be_u16(buf, PROT_VER)?;
        if version < PROTOCOL_VERSION {
            return Err(ArtNetError::invalid("ProtVer", PROT_VER, version));
        }
    }
    if buf.len() < min_len {
        return Err(ArtNetError::incomplete(buf, min_len));
    }
    Ok(())
}

/// Writes ID, OpCode and ProtVer.
fn put_header(buf: &mut Vec<u8>, opcode: u16) {
    buf.extend_from_slice(&ID);
    buf.extend_from_slice(&opcode.to_le_bytes());
    buf.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
}

fn byte(buf: &[u8], at: usize) -> Result<u8, ArtNetError> {
    buf.get(at)
        .copied()
        .ok_or_else(|| ArtNetError::incomplete(buf, at + 1))
}

fn le_u16(buf: &[u8], at: usize) -> Result<u16, ArtNetError> {
    match buf.get(at..at + 2) {
        Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
        _ => Err(ArtNetError::incomplete(buf, at + 2)),
    }
}

fn be_u16(buf: &[u8], at: usize) -> Result<u16, ArtNetError> {
    match buf.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(ArtNetError::incomplete(buf, at + 2)),
    }
}
