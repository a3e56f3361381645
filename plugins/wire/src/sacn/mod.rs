//! sACN: ANSI E1.31-2016, "Lightweight streaming protocol for transport of DMX512 using ACN".
//!
//! An E1.31 packet is three nested PDUs behind a 16-byte ACN preamble: the *root layer* (vector,
//! sender CID), the *framing layer* (source name, priority, sequence, universe …) and either a
//! *DMP layer* carrying the slots (data packets, §6.2/§7), nothing more (synchronization packets,
//! §6.3) or a *universe discovery layer* (§6.4/§8). Every PDU starts with a 16-bit word whose
//! high nibble is the flags (always `0x7` in E1.31) and whose low 12 bits are the PDU's length.
//!
//! - [`decode`] turns one datagram into a [`Packet`] (data, sync or discovery). A data packet
//!   borrows its source name and slots from the datagram: decoding allocates nothing unless the
//!   source name is not valid UTF-8 (it is then decoded lossily).
//! - [`DataPacket::encode_into`], [`SyncPacket::encode_into`] and
//!   [`DiscoveryPacket::encode_into`] write into a reused buffer.
//! - [`multicast_addr`] and [`PORT`] say where a universe is sent.
//! - [`SequenceTracker`] applies the §6.7.2 sequence rule to one stream; [`Merger`] merges the
//!   sources of each universe (priority, then HTP) the way a receiver must.
//!
//! Deliberately not here: per-address priority (start code `0xDD`, an ETC extension) — such packets
//! decode, but [`Merger`] ignores every start code other than `0x00`.

mod error;
mod merge;
mod packet;
mod sequence;

use std::net::Ipv4Addr;
use std::time::Duration;

pub use error::SacnError;
pub use merge::{MergeConfig, MergedUniverse, Merger, Reception, SourceInfo};
pub use packet::{DataPacket, DiscoveryPacket, Options, Packet, SyncPacket, decode};
pub use sequence::{SequenceTracker, sequence_is_newer};

/// UDP port of all E1.31 traffic (ACN SDT multicast port, E1.31 Appendix A).
pub const PORT: u16 = 5568;

/// Value of the root layer "Preamble Size" field (§5.1).
pub const PREAMBLE_SIZE: u16 = 0x0010;
/// Value of the root layer "Post-amble Size" field (§5.2).
pub const POSTAMBLE_SIZE: u16 = 0x0000;
/// The ACN packet identifier, "ASC-E1.17" and three NULs (§5.3).
pub const ACN_PACKET_IDENTIFIER: [u8; 12] = *b"ASC-E1.17\0\0\0";
/// High nibble of every E1.31 flags-and-length word (§5.4: no extended length, vector, header and
/// data present).
pub const PDU_FLAGS: u8 = 0x7;

/// Root layer vector of a data packet (Appendix A).
pub const VECTOR_ROOT_E131_DATA: u32 = 0x0000_0004;
/// Root layer vector of synchronization and universe discovery packets (Appendix A).
pub const VECTOR_ROOT_E131_EXTENDED: u32 = 0x0000_0008;
/// Framing layer vector of a data packet (Appendix A).
pub const VECTOR_E131_DATA_PACKET: u32 = 0x0000_0002;
/// Framing layer vector of a synchronization packet (Appendix A).
pub const VECTOR_E131_EXTENDED_SYNCHRONIZATION: u32 = 0x0000_0001;
/// Framing layer vector of a universe discovery packet (Appendix A).
pub const VECTOR_E131_EXTENDED_DISCOVERY: u32 = 0x0000_0002;
/// DMP layer vector: "set property" (Appendix A).
pub const VECTOR_DMP_SET_PROPERTY: u8 = 0x02;
/// Universe discovery layer vector: a list of universes (Appendix A).
pub const VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST: u32 = 0x0000_0001;
/// DMP "Address Type & Data Type" (§7.3: one-octet data, two-octet addresses, relative).
pub const DMP_ADDRESS_AND_DATA_TYPE: u8 = 0xa1;

/// Lowest universe that may carry data (§6.2.7).
pub const MIN_UNIVERSE: u16 = 1;
/// Highest universe that may carry data (§6.2.7; 64000–65535 are reserved).
pub const MAX_UNIVERSE: u16 = 63999;
/// Universe on which universe discovery packets are sent (Appendix A).
pub const DISCOVERY_UNIVERSE: u16 = 64214;
/// Highest allowed priority (§6.2.3).
pub const MAX_PRIORITY: u8 = 200;
/// Priority a source uses when it has no reason to use another (§6.2.3).
pub const DEFAULT_PRIORITY: u8 = 100;
/// Most slots a data packet carries, not counting the start code (§7.6).
pub const MAX_SLOTS: usize = 512;
/// Size of the NUL-padded source name field; the name itself is at most one byte less.
pub const SOURCE_NAME_FIELD_LEN: usize = 64;
/// Most universes listed on one universe discovery page (§8.5).
pub const UNIVERSES_PER_DISCOVERY_PAGE: usize = 512;

/// Bytes of a data packet before its first slot (preamble through start code).
pub const DATA_HEADER_LEN: usize = 126;
/// Bytes of a synchronization packet (fixed size).
pub const SYNC_PACKET_LEN: usize = 49;
/// Bytes of a universe discovery packet before its list of universes.
pub const DISCOVERY_HEADER_LEN: usize = 120;

/// A source, or a receiver's view of one, is lost after this long without packets (Appendix A,
/// `E131_NETWORK_DATA_LOSS_TIMEOUT`).
pub const NETWORK_DATA_LOSS_TIMEOUT: Duration = Duration::from_millis(2500);
/// How often a source sends its universe discovery pages (Appendix A,
/// `E131_UNIVERSE_DISCOVERY_INTERVAL`).
pub const UNIVERSE_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// IPv4 multicast group of a universe: `239.255.{hi}.{lo}` (§9.3.1).
///
/// Defined for every `u16` so that it cannot fail; only [`MIN_UNIVERSE`]..=[`MAX_UNIVERSE`] and
/// [`DISCOVERY_UNIVERSE`] are meaningful.
#[must_use]
pub const fn multicast_addr(universe: u16) -> Ipv4Addr {
    let [hi, lo] = universe.to_be_bytes();
    Ipv4Addr::new(239, 255, hi, lo)
}

/// True if `universe` may carry data or sync packets (1..=63999).
#[must_use]
pub const fn is_data_universe(universe: u16) -> bool {
    universe >= MIN_UNIVERSE && universe <= MAX_UNIVERSE
}
