//! Tests of the wire codecs, in one test binary (one link on a 2-core machine, not seven).
//!
//! - `sacn_vectors`, `artnet_vectors`, `usbpro_frames`, `timecode_labels`: literal byte vectors
//!   written from the specifications, one comment per field, then the edge cases (OLA's
//!   `E131PDUTest.cpp` / `ArtNetNodeTest.cpp` style).
//! - `merge`: the sACN [`SequenceTracker`] and [`Merger`], table-driven.
//! - `peers`: our bytes against the `sacn` and `artnet_protocol` crates, and their known faults.
//! - `corpus`: the kept fuzz corpus (`tests/corpus`, olad captures included), each file decoded
//!   as its name says, and every file a seed for mutation.
//! - `fuzz`: proptest — arbitrary and mutated input never panics; encode → decode round-trips.
//!
//! [`SequenceTracker`]: rockontrol_wire::sacn::SequenceTracker
//! [`Merger`]: rockontrol_wire::sacn::Merger

mod artnet_vectors;
mod corpus;
mod fuzz;
mod merge;
mod peers;
mod sacn_vectors;
mod timecode_labels;
mod usbpro_frames;

/// A NUL-padded fixed-size text field, as E1.31 and Art-Net both use.
pub fn padded(text: &[u8], len: usize) -> Vec<u8> {
    let mut field = text.to_vec();
    field.resize(len, 0);
    field
}
