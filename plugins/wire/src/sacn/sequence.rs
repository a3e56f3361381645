//! E1.31 §6.7.2 sequence numbering.

/// The §6.7.2 test: is a packet numbered `new` acceptable after one numbered `last`?
///
/// The difference `new - last` is taken in 8-bit two's complement. A packet is discarded when
/// `-20 < diff <= 0`: a duplicate or a recent straggler. Anything else is accepted — including a
/// jump backwards by 20 or more, which is how a receiver follows a source that restarted.
#[must_use]
pub const fn sequence_is_newer(last: u8, new: u8) -> bool {
    let diff = new.wrapping_sub(last) as i8;
    !(diff <= 0 && diff > -20)
}

/// Tracks the sequence of one stream (one source on one universe, or one source's sync address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceTracker {
    last: Option<u8>,
}

impl SequenceTracker {
    /// A tracker that has seen nothing yet: it accepts any first packet.
    #[must_use]
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// Applies the §6.7.2 rule to `sequence`; if the packet is accepted, remembers it.
    ///
    /// Returns `true` if the packet should be processed, `false` if it must be discarded.
    pub fn accept(&mut self, sequence: u8) -> bool {
        let accepted = self
            .last
            .is_none_or(|last| sequence_is_newer(last, sequence));
        if accepted {
            self.last = Some(sequence);
        }
        accepted
    }

    /// The last accepted sequence number, if any.
    #[must_use]
    pub const fn last(&self) -> Option<u8> {
        self.last
    }

    /// Forgets the stream, e.g. after a source was lost, so its next packet is accepted.
    pub fn reset(&mut self) {
        self.last = None;
    }
}
