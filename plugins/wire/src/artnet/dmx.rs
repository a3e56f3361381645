//! ArtDmx (OpDmx 0x5000) and ArtSync (OpSync 0x5200).

use std::borrow::Cow;

use super::{ArtNetError, OP_DMX, OP_SYNC, PortAddress, be_u16, byte, check_header, put_header};

// ArtDmx byte offsets.
const SEQUENCE: usize = 12;
const PHYSICAL: usize = 13;
const SUB_UNI: usize = 14;
const NET: usize = 15;
const LENGTH: usize = 16;
/// Bytes of ArtDmx before the data.
const DMX_HEADER_LEN: usize = 18;
/// Most slots an ArtDmx carries.
const MAX_DATA: usize = 512;
/// ArtSync: header + Aux1 + Aux2.
const SYNC_LEN: usize = 14;

/// ArtDmx: up to 512 slots of DMX512 data (start code 0) for one Port-Address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtDmx<'a> {
    /// 1..=255, incremented per packet so receivers can reorder; 0 disables the feature.
    pub sequence: u8,
    /// The physical input port the data came from; information only.
    pub physical: u8,
    /// Where the data goes.
    pub port_address: PortAddress,
    /// 1..=512 slots. An odd count is sent padded with one zero, since the Length field must be
    /// even; decoded packets hold exactly Length bytes (so that pad byte included).
    pub data: Cow<'a, [u8]>,
}

impl<'a> ArtDmx<'a> {
    /// Decodes an ArtDmx, cutting the data to its Length field (bytes after it are ignored).
    ///
    /// Odd Lengths are accepted although senders must send even ones; Length 0 is not.
    ///
    /// # Errors
    /// [`ArtNetError::Incomplete`] if the buffer is shorter than the header or than Length says;
    /// [`ArtNetError::Invalid`] for a wrong ID, OpCode or ProtVer (< 14), a Net byte above 0x7f,
    /// or a Length of 0 or above 512.
    pub fn decode(buf: &'a [u8]) -> Result<Self, ArtNetError> {
        check_header(buf, OP_DMX, true, DMX_HEADER_LEN)?;
        let sequence = byte(buf, SEQUENCE)?;
        let physical = byte(buf, PHYSICAL)?;
        let sub_uni = byte(buf, SUB_UNI)?;
        let net = byte(buf, NET)?;
        let port_address = PortAddress::from_sub_uni_net(sub_uni, net)
            .ok_or(ArtNetError::invalid("Net", NET, net))?;
        let length = usize::from(be_u16(buf, LENGTH)?);
        if length == 0 || length > MAX_DATA {
            return Err(ArtNetError::invalid_len("Length", LENGTH, length));
        }
        let data = buf
            .get(DMX_HEADER_LEN..DMX_HEADER_LEN + length)
            .ok_or(ArtNetError::incomplete(buf, DMX_HEADER_LEN + length))?;
        Ok(Self {
            sequence,
            physical,
            port_address,
            data: Cow::Borrowed(data),
        })
    }
}

impl ArtDmx<'_> {
    /// The Length field this packet is sent with: the slot count rounded up to even.
    #[must_use]
    pub fn wire_length(&self) -> usize {
        self.data.len() + self.data.len() % 2
    }

    /// Bytes this packet takes on the wire.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        DMX_HEADER_LEN + self.wire_length()
    }

    /// Clears `buf` and writes this packet into it, padding an odd slot count with one zero.
    ///
    /// # Errors
    /// [`ArtNetError::Invalid`] (field `Length`) for 0 or more than 512 slots; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), ArtNetError> {
        buf.clear();
        if self.data.is_empty() || self.data.len() > MAX_DATA {
            return Err(ArtNetError::invalid_len("Length", LENGTH, self.data.len()));
        }
        let length = self.wire_length();
        buf.reserve(DMX_HEADER_LEN + length);
        put_header(buf, OP_DMX);
        buf.push(self.sequence);
        buf.push(self.physical);
        buf.push(self.port_address.sub_uni());
        buf.push(self.port_address.net());
        // Checked above: at most 512.
        buf.extend_from_slice(&(length as u16).to_be_bytes());
        buf.extend_from_slice(&self.data);
        buf.resize(DMX_HEADER_LEN + length, 0);
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`ArtDmx::encode_into`].
    pub fn encode(&self) -> Result<Vec<u8>, ArtNetError> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Copies the data so the packet outlives the buffer it was decoded from.
    #[must_use]
    pub fn into_owned(self) -> ArtDmx<'static> {
        ArtDmx {
            sequence: self.sequence,
            physical: self.physical,
            port_address: self.port_address,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

/// ArtSync: nodes output the ArtDmx they hold, all at once (14 bytes; Aux1 and Aux2 are zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ArtSync;

impl ArtSync {
    /// Bytes of an ArtSync.
    pub const LEN: usize = SYNC_LEN;

    /// Clears `buf` and writes the 14-byte packet into it.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        put_header(buf, OP_SYNC);
        buf.extend_from_slice(&[0, 0]); // Aux1, Aux2: transmit as zero
    }

    /// Encodes into a new buffer.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(SYNC_LEN);
        self.encode_into(&mut buf);
        buf
    }

    /// Decodes an ArtSync; Aux1 and Aux2 are ignored as the spec says.
    ///
    /// # Errors
    /// [`ArtNetError::Incomplete`] below 14 bytes; [`ArtNetError::Invalid`] for a wrong ID,
    /// OpCode or ProtVer.
    pub fn decode(buf: &[u8]) -> Result<Self, ArtNetError> {
        check_header(buf, OP_SYNC, true, SYNC_LEN)?;
        Ok(Self)
    }
}
