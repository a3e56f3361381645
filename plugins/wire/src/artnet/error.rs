//! The one error type of the Art-Net codec.

/// Why an Art-Net packet could not be decoded (or encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtNetError {
    /// The buffer ends before the packet does: `needed` bytes are required, `available` were given.
    #[error("incomplete Art-Net packet: need {needed} bytes, have {available}")]
    Incomplete {
        /// Bytes the packet needs, as far as the decoder could tell when it stopped.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    /// A field holds a value the Art-Net 4 specification forbids (or this side cannot encode).
    #[error("invalid Art-Net {field} at byte {offset}: {value:#x}")]
    Invalid {
        /// The Art-Net name of the field.
        field: &'static str,
        /// Byte offset of the field from the start of the packet.
        offset: usize,
        /// The offending value (for a byte string: the first wrong byte; for a length: the length).
        value: u32,
    },
    /// A valid Art-Net header with an OpCode this crate does not decode.
    #[error("unsupported Art-Net OpCode {opcode:#06x}")]
    Unsupported {
        /// The OpCode, as a number (sent little-endian).
        opcode: u16,
    },
}

impl ArtNetError {
    /// True for [`ArtNetError::Incomplete`].
    #[must_use]
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Self::Incomplete { .. })
    }

    pub(crate) fn invalid(field: &'static str, offset: usize, value: impl Into<u32>) -> Self {
        Self::Invalid {
            field,
            offset,
            value: value.into(),
        }
    }

    pub(crate) fn invalid_len(field: &'static str, offset: usize, value: usize) -> Self {
        Self::Invalid {
            field,
            offset,
            value: u32::try_from(value).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn incomplete(buf: &[u8], needed: usize) -> Self {
        Self::Incomplete {
            needed,
            available: buf.len(),
        }
    }
}
