//! Wire codecs for RocKontrol: the bytes of sACN (ANSI E1.31), Art-Net 4, the Enttec DMX USB Pro
//! serial framing, and the SMPTE timecode they carry.
//!
//! This crate is pure: every function takes bytes (or a packet struct) and returns a packet struct
//! (or bytes). It opens no sockets, reads no clock, spawns nothing and does not know Bevy or tokio,
//! so it can be tested against literal byte vectors and fuzzed, and the one place that owns the
//! sockets (`plugins/dmx`) stays small. Time, where a state machine needs it (the sACN merger), is
//! passed in as an argument.
//!
//! Decoders never panic on any input. Every decoder error says whether the buffer was merely
//! *incomplete* (too short: more bytes would be needed) or *invalid* (a field holds a value the
//! specification forbids), and which field at which byte offset — the same split mini-redis makes
//! between `Frame::check` and `Frame::parse`.
//!
//! Encoders write into a caller-owned `Vec<u8>` (`encode_into`), which they clear first: a sender
//! that keeps one buffer per thread encodes 512 universes at 44 Hz without allocating.
//!
//! # Layout
//! - [`sacn`] — E1.31 data, synchronization and universe discovery packets; the multicast address
//!   of a universe; [`sacn::SequenceTracker`] (E1.31 §6.7.2) and [`sacn::Merger`] (per-universe
//!   priority + HTP merge of several sources, with source loss and stream termination).
//! - [`artnet`] — Art-Net 4 ArtDmx, ArtSync, ArtPoll, ArtPollReply and ArtTimeCode, and the 15-bit
//!   [`artnet::PortAddress`].
//! - [`usbpro`] — Enttec DMX USB Pro message framing (`0x7E label len… 0xE7`), the DMX output and
//!   widget-parameter messages, and a streaming [`usbpro::FrameDecoder`] for reading a serial port.
//! - [`timecode`] — [`timecode::Timecode`] (`hh:mm:ss:ff`) and [`timecode::FrameRate`], with frame
//!   counting for 24, 25, 29.97 drop-frame and 30 fps.

pub mod artnet;
pub mod sacn;
pub mod timecode;
pub mod usbpro;
