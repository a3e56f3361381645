//! The one error type of the sACN codec.

/// Why an sACN packet could not be decoded (or encoded).
///
/// `Incomplete` and `Invalid` are kept apart on purpose: a datagram that was cut short is a
/// transport problem (or a sender bug in the length fields) and reads differently in a log from
/// a packet whose fields break E1.31.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SacnError {
    /// The buffer ends before the packet does: `needed` bytes are required, `available` were given.
    #[error("incomplete sACN packet: need {needed} bytes, have {available}")]
    Incomplete {
        /// Bytes the packet needs, as far as the decoder could tell when it stopped.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    /// A field holds a value that E1.31 forbids (or that this side cannot encode).
    #[error("invalid sACN {field} at byte {offset}: {value:#x}")]
    Invalid {
        /// The E1.31 name of the field.
        field: &'static str,
        /// Byte offset of the field from the start of the packet.
        offset: usize,
        /// The offending value (for a byte string: the first wrong byte; for a length: the length).
        value: u32,
    },
}

impl SacnError {
    /// True for [`SacnError::Incomplete`].
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
}
