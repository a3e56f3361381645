//! E1.31 packet layouts: encode and decode of data, synchronization and discovery packets.

use std::borrow::Cow;

use super::{
    ACN_PACKET_IDENTIFIER, DATA_HEADER_LEN, DISCOVERY_HEADER_LEN, DMP_ADDRESS_AND_DATA_TYPE,
    MAX_PRIORITY, MAX_SLOTS, MAX_UNIVERSE, PDU_FLAGS, POSTAMBLE_SIZE, PREAMBLE_SIZE,
    SYNC_PACKET_LEN, SacnError, UNIVERSES_PER_DISCOVERY_PAGE, VECTOR_DMP_SET_PROPERTY,
    VECTOR_E131_DATA_PACKET, VECTOR_E131_EXTENDED_DISCOVERY, VECTOR_E131_EXTENDED_SYNCHRONIZATION,
    VECTOR_ROOT_E131_DATA, VECTOR_ROOT_E131_EXTENDED, VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST,
    is_data_universe,
};

// Byte offsets from the start of the packet (E1.31 Tables 4-1, 4-2, 4-3). Shared by all three
// packet kinds up to the framing layer vector.
const POSTAMBLE: usize = 2;
const ACN_ID: usize = 4;
const ROOT_FLAGS_LENGTH: usize = 16;
const ROOT_VECTOR: usize = 18;
const CID: usize = 22;
const FRAMING_FLAGS_LENGTH: usize = 38;
const FRAMING_VECTOR: usize = 40;
/// End of the framing layer vector: the least any E1.31 packet holds.
const COMMON_HEADER_LEN: usize = 44;

// Data packet (Table 4-1).
const SOURCE_NAME: usize = 44;
const PRIORITY: usize = 108;
const SYNC_ADDRESS: usize = 109;
const SEQUENCE: usize = 111;
const OPTIONS: usize = 112;
const UNIVERSE: usize = 113;
const DMP_FLAGS_LENGTH: usize = 115;
const DMP_VECTOR: usize = 117;
const ADDRESS_DATA_TYPE: usize = 118;
const FIRST_PROPERTY_ADDRESS: usize = 119;
const ADDRESS_INCREMENT: usize = 121;
const PROPERTY_VALUE_COUNT: usize = 123;
const START_CODE: usize = 125;

// Synchronization packet (Table 4-2).
const SYNC_SEQUENCE: usize = 44;
const SYNC_SYNC_ADDRESS: usize = 45;

// Universe discovery packet (Table 4-3).
const DISCOVERY_RESERVED: usize = 108;
const UDL_FLAGS_LENGTH: usize = 112;
const UDL_VECTOR: usize = 114;
const PAGE: usize = 118;
const LAST_PAGE: usize = 119;

/// The options byte of a data packet (§6.2.6). Bits 0–4 are reserved: sent as 0, ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// Bit 7: the data is for visualisers, not for live output.
    pub preview: bool,
    /// Bit 6: the source stops sending this universe; receivers drop it at once (§6.2.6, §6.7.1).
    pub stream_terminated: bool,
    /// Bit 5: if sync packets stop, keep waiting (false) or fall back to applying data at once (true).
    pub force_synchronization: bool,
}

impl Options {
    const PREVIEW: u8 = 0x80;
    const STREAM_TERMINATED: u8 = 0x40;
    const FORCE_SYNCHRONIZATION: u8 = 0x20;

    /// The options byte as sent.
    #[must_use]
    pub const fn to_byte(self) -> u8 {
        (if self.preview { Self::PREVIEW } else { 0 })
            | (if self.stream_terminated {
                Self::STREAM_TERMINATED
            } else {
                0
            })
            | (if self.force_synchronization {
                Self::FORCE_SYNCHRONIZATION
            } else {
                0
            })
    }

    /// Reads an options byte; reserved bits are ignored as §6.2.6 requires.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Self {
        Self {
            preview: byte & Self::PREVIEW != 0,
            stream_terminated: byte & Self::STREAM_TERMINATED != 0,
            force_synchronization: byte & Self::FORCE_SYNCHRONIZATION != 0,
        }
    }
}

/// An E1.31 data packet (§6.2, §7): one universe's slots from one source.
///
/// `source_name` and `slots` are [`Cow`]s so that a sender can encode from borrowed data and a
/// receiver can decode without copying; [`DataPacket::into_owned`] detaches a decoded packet from
/// its datagram.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataPacket<'a> {
    /// Component identifier of the source: a UUID, constant for the life of the source (§5.6).
    pub cid: [u8; 16],
    /// User-readable name of the source: at most 63 bytes of UTF-8, no NUL (§6.2.2).
    pub source_name: Cow<'a, str>,
    /// 0..=200; the highest priority source of a universe wins (§6.2.3).
    pub priority: u8,
    /// Universe whose sync packets release this data; 0 = apply at once (§6.2.4).
    pub sync_address: u16,
    /// Per-universe sequence number (§6.2.5, §6.7.2).
    pub sequence: u8,
    /// Preview, stream-terminated and force-synchronization bits (§6.2.6).
    pub options: Options,
    /// 1..=63999 (§6.2.7).
    pub universe: u16,
    /// DMX512 start code: `0x00` for dimmer data (§7.6). Not counted in `slots`.
    pub start_code: u8,
    /// 0..=512 slot values following the start code.
    pub slots: Cow<'a, [u8]>,
}

impl DataPacket<'_> {
    /// Bytes this packet takes on the wire: 126 + number of slots.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        DATA_HEADER_LEN + self.slots.len()
    }

    /// Checks every field against E1.31 without encoding.
    ///
    /// # Errors
    /// [`SacnError::Invalid`] naming the first field that cannot be sent, with the byte offset it
    /// would have had.
    pub fn validate(&self) -> Result<(), SacnError> {
        check_source_name(&self.source_name)?;
        if self.priority > MAX_PRIORITY {
            return Err(SacnError::invalid("priority", PRIORITY, self.priority));
        }
        if self.sync_address > MAX_UNIVERSE {
            return Err(SacnError::invalid(
                "synchronization address",
                SYNC_ADDRESS,
                self.sync_address,
            ));
        }
        if !is_data_universe(self.universe) {
            return Err(SacnError::invalid("universe", UNIVERSE, self.universe));
        }
        if self.slots.len() > MAX_SLOTS {
            return Err(SacnError::invalid_len(
                "property value count",
                PROPERTY_VALUE_COUNT,
                self.slots.len() + 1,
            ));
        }
        Ok(())
    }

    /// Clears `buf` and writes this packet into it. Allocates only while `buf` is still smaller
    /// than the packet.
    ///
    /// # Errors
    /// As [`DataPacket::validate`]; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), SacnError> {
        buf.clear();
        self.validate()?;
        let total = self.encoded_len();
        buf.reserve(total);
        put_root_layer(buf, total, VECTOR_ROOT_E131_DATA, &self.cid);
        // Framing layer (Table 4-1).
        put_flags_and_length(buf, total - FRAMING_FLAGS_LENGTH);
        buf.extend_from_slice(&VECTOR_E131_DATA_PACKET.to_be_bytes());
        put_source_name(buf, &self.source_name);
        buf.push(self.priority);
        buf.extend_from_slice(&self.sync_address.to_be_bytes());
        buf.push(self.sequence);
        buf.push(self.options.to_byte());
        buf.extend_from_slice(&self.universe.to_be_bytes());
        // DMP layer (§7).
        put_flags_and_length(buf, total - DMP_FLAGS_LENGTH);
        buf.push(VECTOR_DMP_SET_PROPERTY);
        buf.push(DMP_ADDRESS_AND_DATA_TYPE);
        buf.extend_from_slice(&0u16.to_be_bytes()); // first property address
        buf.extend_from_slice(&1u16.to_be_bytes()); // address increment
        // The count includes the start code; validate() bounded it to 513.
        buf.extend_from_slice(&((self.slots.len() + 1) as u16).to_be_bytes());
        buf.push(self.start_code);
        buf.extend_from_slice(&self.slots);
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`DataPacket::validate`].
    pub fn encode(&self) -> Result<Vec<u8>, SacnError> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Copies borrowed fields so the packet outlives the buffer it was decoded from.
    #[must_use]
    pub fn into_owned(self) -> DataPacket<'static> {
        DataPacket {
            cid: self.cid,
            source_name: Cow::Owned(self.source_name.into_owned()),
            priority: self.priority,
            sync_address: self.sync_address,
            sequence: self.sequence,
            options: self.options,
            universe: self.universe,
            start_code: self.start_code,
            slots: Cow::Owned(self.slots.into_owned()),
        }
    }
}

/// An E1.31 synchronization packet (§6.3): "apply the data you hold for `sync_address` now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncPacket {
    /// Component identifier of the source.
    pub cid: [u8; 16],
    /// Sequence number of the sync stream (its own sequence, not a data universe's).
    pub sequence: u8,
    /// The universe this sync packet is sent on, 1..=63999 (§6.3.3.1).
    pub sync_address: u16,
}

impl SyncPacket {
    /// Clears `buf` and writes the 49-byte packet into it.
    ///
    /// # Errors
    /// [`SacnError::Invalid`] if `sync_address` is outside 1..=63999.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), SacnError> {
        buf.clear();
        if !is_data_universe(self.sync_address) {
            return Err(SacnError::invalid(
                "synchronization address",
                SYNC_SYNC_ADDRESS,
                self.sync_address,
            ));
        }
        buf.reserve(SYNC_PACKET_LEN);
        put_root_layer(buf, SYNC_PACKET_LEN, VECTOR_ROOT_E131_EXTENDED, &self.cid);
        put_flags_and_length(buf, SYNC_PACKET_LEN - FRAMING_FLAGS_LENGTH);
        buf.extend_from_slice(&VECTOR_E131_EXTENDED_SYNCHRONIZATION.to_be_bytes());
        buf.push(self.sequence);
        buf.extend_from_slice(&self.sync_address.to_be_bytes());
        buf.extend_from_slice(&[0, 0]); // reserved (§6.3.4)
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`SyncPacket::encode_into`].
    pub fn encode(&self) -> Result<Vec<u8>, SacnError> {
        let mut buf = Vec::with_capacity(SYNC_PACKET_LEN);
        self.encode_into(&mut buf)?;
        Ok(buf)
    }
}

/// One page of an E1.31 universe discovery packet (§6.4, §8): the universes a source sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoveryPacket<'a> {
    /// Component identifier of the source.
    pub cid: [u8; 16],
    /// User-readable name of the source, as in [`DataPacket::source_name`].
    pub source_name: Cow<'a, str>,
    /// This page, counting from 0 (§8.3).
    pub page: u8,
    /// The last page of this source's list (§8.4).
    pub last_page: u8,
    /// Up to 512 universes, strictly ascending (§8.5).
    pub universes: Vec<u16>,
}

impl<'a> DiscoveryPacket<'a> {
    /// Splits a source's universe list into the pages it sends every 10 s.
    ///
    /// The list is sorted and de-duplicated first; each page holds up to 512 universes. An empty
    /// list still gives one (empty) page, which is how a source says it sends nothing.
    #[must_use]
    pub fn paginate(
        cid: [u8; 16],
        source_name: &'a str,
        universes: &[u16],
    ) -> Vec<DiscoveryPacket<'a>> {
        let mut sorted = universes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let chunks: Vec<&[u16]> = if sorted.is_empty() {
            vec![&[]]
        } else {
            sorted.chunks(UNIVERSES_PER_DISCOVERY_PAGE).collect()
        };
        // 65536 distinct u16 values / 512 per page = at most 128 pages: always fits a u8.
        let last_page = (chunks.len() - 1) as u8;
        chunks
            .into_iter()
            .enumerate()
            .map(|(page, universes)| DiscoveryPacket {
                cid,
                source_name: Cow::Borrowed(source_name),
                page: page as u8,
                last_page,
                universes: universes.to_vec(),
            })
            .collect()
    }
}

impl DiscoveryPacket<'_> {
    /// Bytes this page takes on the wire: 120 + 2 per universe.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        DISCOVERY_HEADER_LEN + 2 * self.universes.len()
    }

    /// Checks every field against E1.31 without encoding.
    ///
    /// # Errors
    /// [`SacnError::Invalid`] naming the first field that cannot be sent.
    pub fn validate(&self) -> Result<(), SacnError> {
        check_source_name(&self.source_name)?;
        if self.page > self.last_page {
            return Err(SacnError::invalid("page", PAGE, self.page));
        }
        if self.universes.len() > UNIVERSES_PER_DISCOVERY_PAGE {
            return Err(SacnError::invalid_len(
                "universe discovery layer length",
                UDL_FLAGS_LENGTH,
                8 + 2 * self.universes.len(),
            ));
        }
        for (index, pair) in self.universes.windows(2).enumerate() {
            if let [before, after] = *pair
                && after <= before
            {
                return Err(SacnError::invalid(
                    "list of universes",
                    DISCOVERY_HEADER_LEN + 2 * (index + 1),
                    after,
                ));
            }
        }
        Ok(())
    }

    /// Clears `buf` and writes this page into it.
    ///
    /// # Errors
    /// As [`DiscoveryPacket::validate`]; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), SacnError> {
        buf.clear();
        self.validate()?;
        let total = self.encoded_len();
        buf.reserve(total);
        put_root_layer(buf, total, VECTOR_ROOT_E131_EXTENDED, &self.cid);
        put_flags_and_length(buf, total - FRAMING_FLAGS_LENGTH);
        buf.extend_from_slice(&VECTOR_E131_EXTENDED_DISCOVERY.to_be_bytes());
        put_source_name(buf, &self.source_name);
        buf.extend_from_slice(&[0; 4]); // reserved (§6.4.3)
        put_flags_and_length(buf, total - UDL_FLAGS_LENGTH);
        buf.extend_from_slice(&VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST.to_be_bytes());
        buf.push(self.page);
        buf.push(self.last_page);
        for universe in &self.universes {
            buf.extend_from_slice(&universe.to_be_bytes());
        }
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`DiscoveryPacket::validate`].
    pub fn encode(&self) -> Result<Vec<u8>, SacnError> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Copies borrowed fields so the packet outlives the buffer it was decoded from.
    #[must_use]
    pub fn into_owned(self) -> DiscoveryPacket<'static> {
        DiscoveryPacket {
            cid: self.cid,
            source_name: Cow::Owned(self.source_name.into_owned()),
            page: self.page,
            last_page: self.last_page,
            universes: self.universes,
        }
    }
}

/// Any E1.31 packet, as returned by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Packet<'a> {
    /// Slots for one universe.
    Data(DataPacket<'a>),
    /// Release data held for a sync address.
    Sync(SyncPacket),
    /// One page of a source's universe list.
    Discovery(DiscoveryPacket<'a>),
}

impl Packet<'_> {
    /// The sender's CID, whatever the packet kind.
    #[must_use]
    pub fn cid(&self) -> &[u8; 16] {
        match self {
            Packet::Data(packet) => &packet.cid,
            Packet::Sync(packet) => &packet.cid,
            Packet::Discovery(packet) => &packet.cid,
        }
    }

    /// Copies borrowed fields so the packet outlives the buffer it was decoded from.
    #[must_use]
    pub fn into_owned(self) -> Packet<'static> {
        match self {
            Packet::Data(packet) => Packet::Data(packet.into_owned()),
            Packet::Sync(packet) => Packet::Sync(packet),
            Packet::Discovery(packet) => Packet::Discovery(packet.into_owned()),
        }
    }
}

/// Decodes one E1.31 datagram.
///
/// Checks what §5–§8 tell a receiver to check: preamble and post-amble sizes, the ACN packet
/// identifier, the flags of every PDU, that every PDU length agrees with its parent's, every
/// vector, the DMP address/data type, first address and increment, the property count (1..=513,
/// equal to the DMP length), priority ≤ 200, universe 1..=63999, sync address ≤ 63999 (1..=63999
/// in a sync packet), and a discovery page's universe list (≤ 512, strictly ascending, page ≤
/// last page). Source names are read up to the first NUL and decoded lossily; reserved fields
/// and reserved option bits are ignored. Bytes after the root PDU's declared length are ignored.
///
/// # Errors
/// [`SacnError::Incomplete`] if the buffer ends before the root PDU's declared length (or before
/// the root layer's length field); [`SacnError::Invalid`] naming the first field that breaks the
/// standard and its byte offset.
pub fn decode(buf: &[u8]) -> Result<Packet<'_>, SacnError> {
    let total = check_root_layer(buf)?;
    let pkt = buf.get(..total).ok_or(SacnError::Incomplete {
        needed: total,
        available: buf.len(),
    })?;
    if total < COMMON_HEADER_LEN {
        return Err(SacnError::invalid_len(
            "root layer length",
            ROOT_FLAGS_LENGTH,
            total - ROOT_FLAGS_LENGTH,
        ));
    }
    let root_vector = be_u32(pkt, ROOT_VECTOR)?;
    if root_vector != VECTOR_ROOT_E131_DATA && root_vector != VECTOR_ROOT_E131_EXTENDED {
        return Err(SacnError::invalid(
            "root layer vector",
            ROOT_VECTOR,
            root_vector,
        ));
    }
    let cid = array16(pkt, CID)?;
    // One PDU per parent in E1.31, so each child PDU must fill its parent exactly.
    let framing_len = flags_and_length(pkt, FRAMING_FLAGS_LENGTH, "framing layer flags")?;
    if framing_len != total - FRAMING_FLAGS_LENGTH {
        return Err(SacnError::invalid_len(
            "framing layer length",
            FRAMING_FLAGS_LENGTH,
            framing_len,
        ));
    }
    let framing_vector = be_u32(pkt, FRAMING_VECTOR)?;
    match (root_vector, framing_vector) {
        (VECTOR_ROOT_E131_DATA, VECTOR_E131_DATA_PACKET) => decode_data(pkt, cid).map(Packet::Data),
        (VECTOR_ROOT_E131_EXTENDED, VECTOR_E131_EXTENDED_SYNCHRONIZATION) => {
            decode_sync(pkt, cid).map(Packet::Sync)
        }
        (VECTOR_ROOT_E131_EXTENDED, VECTOR_E131_EXTENDED_DISCOVERY) => {
            decode_discovery(pkt, cid).map(Packet::Discovery)
        }
        (_, vector) => Err(SacnError::invalid(
            "framing layer vector",
            FRAMING_VECTOR,
            vector,
        )),
    }
}

/// Checks the preamble, post-amble and ACN identifier, reads the root length and returns the
/// packet's total length (16 + root PDU length) once the buffer is known to hold it.
fn check_root_layer(buf: &[u8]) -> Result<usize, SacnError> {
    let preamble = be_u16(buf, 0)?;
    if preamble != PREAMBLE_SIZE {
        return Err(SacnError::invalid("preamble size", 0, preamble));
    }
    let postamble = be_u16(buf, POSTAMBLE)?;
    if postamble != POSTAMBLE_SIZE {
        return Err(SacnError::invalid("post-amble size", POSTAMBLE, postamble));
    }
    // Compare what is there before asking for more, so that a short non-E1.31 datagram reads as
    // invalid rather than incomplete.
    let present = buf.get(ACN_ID..).unwrap_or_default();
    for (index, (&got, &want)) in present.iter().zip(&ACN_PACKET_IDENTIFIER).enumerate() {
        if got != want {
            return Err(SacnError::invalid(
                "ACN packet identifier",
                ACN_ID + index,
                got,
            ));
        }
    }
    let root_len = flags_and_length(buf, ROOT_FLAGS_LENGTH, "root layer flags")?;
    let total = ROOT_FLAGS_LENGTH + root_len;
    if buf.len() < total {
        return Err(SacnError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    Ok(total)
}

fn decode_data(pkt: &[u8], cid: [u8; 16]) -> Result<DataPacket<'_>, SacnError> {
    let total = pkt.len();
    if total < DATA_HEADER_LEN {
        return Err(SacnError::invalid_len(
            "framing layer length",
            FRAMING_FLAGS_LENGTH,
            total - FRAMING_FLAGS_LENGTH,
        ));
    }
    let source_name = source_name(pkt.get(SOURCE_NAME..PRIORITY).unwrap_or_default());
    let priority = byte(pkt, PRIORITY)?;
    if priority > MAX_PRIORITY {
        return Err(SacnError::invalid("priority", PRIORITY, priority));
    }
    let sync_address = be_u16(pkt, SYNC_ADDRESS)?;
    if sync_address > MAX_UNIVERSE {
        return Err(SacnError::invalid(
            "synchronization address",
            SYNC_ADDRESS,
            sync_address,
        ));
    }
    let sequence = byte(pkt, SEQUENCE)?;
    let options = Options::from_byte(byte(pkt, OPTIONS)?);
    let universe = be_u16(pkt, UNIVERSE)?;
    if !is_data_universe(universe) {
        return Err(SacnError::invalid("universe", UNIVERSE, universe));
    }
    let dmp_len = flags_and_length(pkt, DMP_FLAGS_LENGTH, "DMP layer flags")?;
    if dmp_len != total - DMP_FLAGS_LENGTH {
        return Err(SacnError::invalid_len(
            "DMP layer length",
            DMP_FLAGS_LENGTH,
            dmp_len,
        ));
    }
    expect_byte(pkt, DMP_VECTOR, VECTOR_DMP_SET_PROPERTY, "DMP vector")?;
    expect_byte(
        pkt,
        ADDRESS_DATA_TYPE,
        DMP_ADDRESS_AND_DATA_TYPE,
        "address type and data type",
    )?;
    let first_address = be_u16(pkt, FIRST_PROPERTY_ADDRESS)?;
    if first_address != 0 {
        return Err(SacnError::invalid(
            "first property address",
            FIRST_PROPERTY_ADDRESS,
            first_address,
        ));
    }
    let increment = be_u16(pkt, ADDRESS_INCREMENT)?;
    if increment != 1 {
        return Err(SacnError::invalid(
            "address increment",
            ADDRESS_INCREMENT,
            increment,
        ));
    }
    let count = usize::from(be_u16(pkt, PROPERTY_VALUE_COUNT)?);
    // The count includes the start code: 1..=513, and it must match the DMP length exactly.
    if count == 0 || count > MAX_SLOTS + 1 || count != total - START_CODE {
        return Err(SacnError::invalid_len(
            "property value count",
            PROPERTY_VALUE_COUNT,
            count,
        ));
    }
    let start_code = byte(pkt, START_CODE)?;
    let slots = pkt.get(DATA_HEADER_LEN..).unwrap_or_default();
    Ok(DataPacket {
        cid,
        source_name,
        priority,
        sync_address,
        sequence,
        options,
        universe,
        start_code,
        slots: Cow::Borrowed(slots),
    })
}

fn decode_sync(pkt: &[u8], cid: [u8; 16]) -> Result<SyncPacket, SacnError> {
    if pkt.len() != SYNC_PACKET_LEN {
        return Err(SacnError::invalid_len(
            "framing layer length",
            FRAMING_FLAGS_LENGTH,
            pkt.len() - FRAMING_FLAGS_LENGTH,
        ));
    }
    let sequence = byte(pkt, SYNC_SEQUENCE)?;
    let sync_address = be_u16(pkt, SYNC_SYNC_ADDRESS)?;
    if !is_data_universe(sync_address) {
        return Err(SacnError::invalid(
            "synchronization address",
            SYNC_SYNC_ADDRESS,
            sync_address,
        ));
    }
    // The two reserved bytes are ignored by receivers (§6.3.4).
    Ok(SyncPacket {
        cid,
        sequence,
        sync_address,
    })
}

fn decode_discovery(pkt: &[u8], cid: [u8; 16]) -> Result<DiscoveryPacket<'_>, SacnError> {
    let total = pkt.len();
    if total < DISCOVERY_HEADER_LEN {
        return Err(SacnError::invalid_len(
            "framing layer length",
            FRAMING_FLAGS_LENGTH,
            total - FRAMING_FLAGS_LENGTH,
        ));
    }
    let source_name = source_name(pkt.get(SOURCE_NAME..DISCOVERY_RESERVED).unwrap_or_default());
    // Four reserved bytes follow the name; receivers ignore them (§6.4.3).
    let udl_len = flags_and_length(pkt, UDL_FLAGS_LENGTH, "universe discovery layer flags")?;
    let list = pkt.get(DISCOVERY_HEADER_LEN..).unwrap_or_default();
    if udl_len != total - UDL_FLAGS_LENGTH
        || list.len() % 2 != 0
        || list.len() / 2 > UNIVERSES_PER_DISCOVERY_PAGE
    {
        return Err(SacnError::invalid_len(
            "universe discovery layer length",
            UDL_FLAGS_LENGTH,
            udl_len,
        ));
    }
    let vector = be_u32(pkt, UDL_VECTOR)?;
    if vector != VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST {
        return Err(SacnError::invalid(
            "universe discovery layer vector",
            UDL_VECTOR,
            vector,
        ));
    }
    let page = byte(pkt, PAGE)?;
    let last_page = byte(pkt, LAST_PAGE)?;
    if page > last_page {
        return Err(SacnError::invalid("page", PAGE, page));
    }
    let mut universes = Vec::with_capacity(list.len() / 2);
    for (index, pair) in list.chunks_exact(2).enumerate() {
        let universe = u16::from_be_bytes([pair[0], pair[1]]);
        if universes.last().is_some_and(|&before| universe <= before) {
            return Err(SacnError::invalid(
                "list of universes",
                DISCOVERY_HEADER_LEN + 2 * index,
                universe,
            ));
        }
        universes.push(universe);
    }
    Ok(DiscoveryPacket {
        cid,
        source_name,
        page,
        last_page,
        universes,
    })
}

fn check_source_name(name: &str) -> Result<(), SacnError> {
    // 64-byte field, NUL terminated: 63 bytes of name at most (§6.2.2). A NUL inside the name
    // would cut it short at the receiver, so it cannot be sent faithfully.
    if name.len() >= super::SOURCE_NAME_FIELD_LEN {
        return Err(SacnError::invalid_len(
            "source name",
            SOURCE_NAME,
            name.len(),
        ));
    }
    if let Some(index) = name.bytes().position(|b| b == 0) {
        return Err(SacnError::invalid("source name", SOURCE_NAME + index, 0u8));
    }
    Ok(())
}

fn source_name(field: &[u8]) -> Cow<'_, str> {
    let name = field.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(name)
}

fn put_root_layer(buf: &mut Vec<u8>, total: usize, vector: u32, cid: &[u8; 16]) {
    buf.extend_from_slice(&PREAMBLE_SIZE.to_be_bytes());
    buf.extend_from_slice(&POSTAMBLE_SIZE.to_be_bytes());
    buf.extend_from_slice(&ACN_PACKET_IDENTIFIER);
    put_flags_and_length(buf, total - ROOT_FLAGS_LENGTH);
    buf.extend_from_slice(&vector.to_be_bytes());
    buf.extend_from_slice(cid);
}

fn put_flags_and_length(buf: &mut Vec<u8>, len: usize) {
    // Every E1.31 PDU is far below the 12-bit limit (the largest, a 512-slot root PDU, is 622).
    let word = (u16::from(PDU_FLAGS) << 12) | (len as u16 & 0x0fff);
    buf.extend_from_slice(&word.to_be_bytes());
}

fn put_source_name(buf: &mut Vec<u8>, name: &str) {
    let start = buf.len();
    buf.extend_from_slice(name.as_bytes());
    buf.resize(start + super::SOURCE_NAME_FIELD_LEN, 0);
}

/// Reads a flags-and-length word, checks the flags and returns the PDU length.
fn flags_and_length(buf: &[u8], at: usize, field: &'static str) -> Result<usize, SacnError> {
    let word = be_u16(buf, at)?;
    let flags = (word >> 12) as u8;
    if flags != PDU_FLAGS {
        return Err(SacnError::invalid(field, at, flags));
    }
    Ok(usize::from(word & 0x0fff))
}

fn expect_byte(buf: &[u8], at: usize, want: u8, field: &'static str) -> Result<(), SacnError> {
    let got = byte(buf, at)?;
    if got == want {
        Ok(())
    } else {
        Err(SacnError::invalid(field, at, got))
    }
}

fn incomplete(buf: &[u8], needed: usize) -> SacnError {
    SacnError::Incomplete {
        needed,
        available: buf.len(),
    }
}

fn byte(buf: &[u8], at: usize) -> Result<u8, SacnError> {
    buf.get(at).copied().ok_or_else(|| incomplete(buf, at + 1))
}

fn be_u16(buf: &[u8], at: usize) -> Result<u16, SacnError> {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(incomplete(buf, at + 2)),
    }
}

fn be_u32(buf: &[u8], at: usize) -> Result<u32, SacnError> {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(incomplete(buf, at + 4)),
    }
}

fn array16(buf: &[u8], at: usize) -> Result<[u8; 16], SacnError> {
    buf.get(at..at + 16)
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or_else(|| incomplete(buf, at + 16))
}
