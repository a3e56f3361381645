//! E1.31 byte vectors (Tables 4-1, 4-2, 4-3) and edge cases.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use rockontrol_wire::sacn::{
    self, DataPacket, DiscoveryPacket, Options, Packet, SacnError, SyncPacket,
};

use crate::padded;

const CID: [u8; 16] = [
    0xef, 0x07, 0xc8, 0xdd, 0x00, 0x64, 0x44, 0x01, 0xa3, 0xa2, 0x45, 0x9e, 0xf8, 0xe6, 0x14, 0x3e,
];

fn data_packet(universe: u16, slots: &[u8]) -> DataPacket<'_> {
    DataPacket {
        cid: CID,
        source_name: Cow::Borrowed("RocKontrol"),
        priority: 150,
        sync_address: 7962,
        sequence: 154,
        options: Options::default(),
        universe,
        start_code: 0,
        slots: Cow::Borrowed(slots),
    }
}

/// A data packet with 4 slots, written out field by field from Table 4-1.
fn data_packet_bytes() -> Vec<u8> {
    let name = padded(b"RocKontrol", 64);
    let parts: &[&[u8]] = &[
        &[0x00, 0x10],             // root: preamble size
        &[0x00, 0x00],             // root: post-amble size
        b"ASC-E1.17\0\0\0",        // root: ACN packet identifier
        &[0x70, 0x72],             // root: flags 0x7, length 114 (130 - 16)
        &[0x00, 0x00, 0x00, 0x04], // root: vector VECTOR_ROOT_E131_DATA
        &CID,                      // root: CID
        &[0x70, 0x5c],             // framing: flags 0x7, length 92 (130 - 38)
        &[0x00, 0x00, 0x00, 0x02], // framing: vector VECTOR_E131_DATA_PACKET
        &name,                     // framing: source name "RocKontrol", NUL padded to 64
        &[0x96],                   // framing: priority 150
        &[0x1f, 0x1a],             // framing: synchronization address 7962
        &[0x9a],                   // framing: sequence number 154
        &[0x00],                   // framing: options (none)
        &[0x00, 0x01],             // framing: universe 1
        &[0x70, 0x0f],             // DMP: flags 0x7, length 15 (130 - 115)
        &[0x02],                   // DMP: vector VECTOR_DMP_SET_PROPERTY
        &[0xa1],                   // DMP: address type & data type
        &[0x00, 0x00],             // DMP: first property address
        &[0x00, 0x01],             // DMP: address increment
        &[0x00, 0x05],             // DMP: property value count (start code + 4 slots)
        &[0x00],                   // DMP: DMX512 start code
        &[0x01, 0x02, 0x7f, 0xff], // DMP: slots 1..=4
    ];
    parts.concat()
}

fn decode_data(buf: &[u8]) -> DataPacket<'_> {
    match sacn::decode(buf) {
        Ok(Packet::Data(packet)) => packet,
        other => panic!("expected a data packet, got {other:?}"),
    }
}

#[test]
fn data_packet_matches_spec_bytes() {
    let slots = [0x01, 0x02, 0x7f, 0xff];
    let packet = data_packet(1, &slots);
    let expected = data_packet_bytes();
    assert_eq!(expected.len(), 130, "126 header bytes + 4 slots");
    assert_eq!(
        packet.encode().expect("valid packet encodes"),
        expected,
        "encoded data packet differs from Table 4-1"
    );
    assert_eq!(packet.encoded_len(), expected.len(), "encoded_len agrees");

    let decoded = decode_data(&expected);
    assert_eq!(decoded.cid, CID, "CID");
    assert_eq!(decoded.source_name, "RocKontrol", "source name");
    assert_eq!(decoded.priority, 150, "priority");
    assert_eq!(decoded.sync_address, 7962, "sync address");
    assert_eq!(decoded.sequence, 154, "sequence");
    assert_eq!(decoded.options, Options::default(), "options");
    assert_eq!(decoded.universe, 1, "universe");
    assert_eq!(decoded.start_code, 0, "start code");
    assert_eq!(&*decoded.slots, &slots, "slots");
    assert!(
        matches!(decoded.slots, Cow::Borrowed(_)),
        "slots are borrowed from the datagram, not copied"
    );
    assert!(
        matches!(decoded.source_name, Cow::Borrowed(_)),
        "a UTF-8 source name is borrowed, not copied"
    );
}

#[test]
fn encode_into_reuses_the_buffer() {
    let slots = [7u8; 512];
    let packet = data_packet(42, &slots);
    let mut buf = Vec::new();
    packet.encode_into(&mut buf).expect("encodes");
    let capacity = buf.capacity();
    let pointer = buf.as_ptr();
    for _ in 0..3 {
        packet.encode_into(&mut buf).expect("encodes again");
    }
    assert_eq!(buf.len(), 638, "512-slot packet is 638 bytes");
    assert_eq!(buf.capacity(), capacity, "no regrowth on reuse");
    assert_eq!(buf.as_ptr(), pointer, "no reallocation on reuse");
}

#[test]
fn options_bits_are_7_6_5() {
    for (options, byte) in [
        (
            Options {
                preview: true,
                ..Options::default()
            },
            0x80,
        ),
        (
            Options {
                stream_terminated: true,
                ..Options::default()
            },
            0x40,
        ),
        (
            Options {
                force_synchronization: true,
                ..Options::default()
            },
            0x20,
        ),
    ] {
        let mut packet = data_packet(1, &[]);
        packet.options = options;
        let bytes = packet.encode().expect("encodes");
        assert_eq!(bytes[112], byte, "options byte for {options:?}");
        assert_eq!(decode_data(&bytes).options, options, "decoded {options:?}");
    }
    // Reserved bits 0-4 are ignored on receipt.
    let mut bytes = data_packet_bytes();
    bytes[112] = 0x1f;
    assert_eq!(
        decode_data(&bytes).options,
        Options::default(),
        "reserved option bits ignored"
    );
}

#[test]
fn sync_packet_matches_spec_bytes() {
    let expected: Vec<u8> = [
        &[0x00, 0x10][..],         // root: preamble size
        &[0x00, 0x00],             // root: post-amble size
        b"ASC-E1.17\0\0\0",        // root: ACN packet identifier
        &[0x70, 0x21],             // root: flags 0x7, length 33 (49 - 16)
        &[0x00, 0x00, 0x00, 0x08], // root: vector VECTOR_ROOT_E131_EXTENDED
        &CID,                      // root: CID
        &[0x70, 0x0b],             // framing: flags 0x7, length 11 (49 - 38)
        &[0x00, 0x00, 0x00, 0x01], // framing: vector VECTOR_E131_EXTENDED_SYNCHRONIZATION
        &[0x2a],                   // framing: sequence number 42
        &[0x1f, 0x1a],             // framing: synchronization address 7962
        &[0x00, 0x00],             // framing: reserved
    ]
    .concat();
    assert_eq!(
        expected.len(),
        sacn::SYNC_PACKET_LEN,
        "sync packet is 49 bytes"
    );
    let packet = SyncPacket {
        cid: CID,
        sequence: 42,
        sync_address: 7962,
    };
    assert_eq!(
        packet.encode().expect("encodes"),
        expected,
        "encoded sync packet differs from Table 4-2"
    );
    assert_eq!(
        sacn::decode(&expected),
        Ok(Packet::Sync(packet)),
        "sync packet decodes field for field"
    );
    // Reserved bytes are ignored on receipt (§6.3.4).
    let mut reserved = expected.clone();
    reserved[47] = 0xaa;
    reserved[48] = 0x55;
    assert_eq!(
        sacn::decode(&reserved),
        Ok(Packet::Sync(packet)),
        "reserved bytes ignored"
    );
}

#[test]
fn discovery_packet_matches_spec_bytes() {
    let name = padded(b"RocKontrol", 64);
    let expected: Vec<u8> = [
        &[0x00, 0x10][..],         // root: preamble size
        &[0x00, 0x00],             // root: post-amble size
        b"ASC-E1.17\0\0\0",        // root: ACN packet identifier
        &[0x70, 0x6e],             // root: flags 0x7, length 110 (126 - 16)
        &[0x00, 0x00, 0x00, 0x08], // root: vector VECTOR_ROOT_E131_EXTENDED
        &CID,                      // root: CID
        &[0x70, 0x58],             // framing: flags 0x7, length 88 (126 - 38)
        &[0x00, 0x00, 0x00, 0x02], // framing: vector VECTOR_E131_EXTENDED_DISCOVERY
        &name,                     // framing: source name, NUL padded to 64
        &[0x00, 0x00, 0x00, 0x00], // framing: reserved
        &[0x70, 0x0e],             // discovery: flags 0x7, length 14 (126 - 112)
        &[0x00, 0x00, 0x00, 0x01], // discovery: vector VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST
        &[0x00],                   // discovery: page 0
        &[0x00],                   // discovery: last page 0
        &[0x00, 0x01],             // discovery: universe 1
        &[0x00, 0x02],             // discovery: universe 2
        &[0x1f, 0x1a],             // discovery: universe 7962
    ]
    .concat();
    let packet = DiscoveryPacket {
        cid: CID,
        source_name: Cow::Borrowed("RocKontrol"),
        page: 0,
        last_page: 0,
        universes: vec![1, 2, 7962],
    };
    assert_eq!(
        packet.encode().expect("encodes"),
        expected,
        "encoded discovery packet differs from Table 4-3"
    );
    match sacn::decode(&expected) {
        Ok(Packet::Discovery(decoded)) => {
            assert_eq!(decoded.cid, CID, "CID");
            assert_eq!(decoded.source_name, "RocKontrol", "source name");
            assert_eq!(decoded.page, 0, "page");
            assert_eq!(decoded.last_page, 0, "last page");
            assert_eq!(decoded.universes, vec![1, 2, 7962], "universes");
        }
        other => panic!("expected a discovery packet, got {other:?}"),
    }
}

#[test]
fn discovery_paginates_sorted_512_per_page() {
    let mut universes: Vec<u16> = (1..=1100).rev().collect();
    universes.push(5); // a duplicate
    let pages = DiscoveryPacket::paginate(CID, "RocKontrol", &universes);
    assert_eq!(pages.len(), 3, "1100 universes make 3 pages");
    assert_eq!(pages[0].universes, (1..=512).collect::<Vec<_>>(), "page 0");
    assert_eq!(
        pages[1].universes,
        (513..=1024).collect::<Vec<_>>(),
        "page 1"
    );
    assert_eq!(
        pages[2].universes,
        (1025..=1100).collect::<Vec<_>>(),
        "page 2"
    );
    for (index, page) in pages.iter().enumerate() {
        assert_eq!(usize::from(page.page), index, "page number");
        assert_eq!(page.last_page, 2, "last page");
        let bytes = page.encode().expect("a page encodes");
        assert_eq!(
            bytes.len(),
            120 + 2 * page.universes.len(),
            "page {index} length"
        );
        assert!(
            matches!(sacn::decode(&bytes), Ok(Packet::Discovery(ref d)) if d == page),
            "page {index} round-trips"
        );
    }
    let empty = DiscoveryPacket::paginate(CID, "idle", &[]);
    assert_eq!(empty.len(), 1, "no universes: still one page");
    assert!(empty[0].universes.is_empty(), "and it is empty");
}

#[test]
fn multicast_addresses() {
    assert_eq!(
        sacn::multicast_addr(1),
        Ipv4Addr::new(239, 255, 0, 1),
        "universe 1"
    );
    assert_eq!(
        sacn::multicast_addr(256),
        Ipv4Addr::new(239, 255, 1, 0),
        "universe 256"
    );
    assert_eq!(
        sacn::multicast_addr(63999),
        Ipv4Addr::new(239, 255, 249, 255),
        "universe 63999"
    );
    assert_eq!(
        sacn::multicast_addr(sacn::DISCOVERY_UNIVERSE),
        Ipv4Addr::new(239, 255, 250, 214),
        "discovery universe 64214"
    );
    assert_eq!(sacn::PORT, 5568, "ACN SDT multicast port");
}

#[test]
fn universe_range_edges() {
    for universe in [1, 63999] {
        let bytes = data_packet(universe, &[1])
            .encode()
            .expect("edge universe encodes");
        assert_eq!(
            decode_data(&bytes).universe,
            universe,
            "universe {universe} round-trips"
        );
    }
    for universe in [0, 64000, sacn::DISCOVERY_UNIVERSE, u16::MAX] {
        assert_eq!(
            data_packet(universe, &[1]).encode(),
            Err(SacnError::Invalid {
                field: "universe",
                offset: 113,
                value: u32::from(universe),
            }),
            "universe {universe} refused on encode"
        );
        let mut bytes = data_packet_bytes();
        bytes[113..115].copy_from_slice(&universe.to_be_bytes());
        assert_eq!(
            sacn::decode(&bytes),
            Err(SacnError::Invalid {
                field: "universe",
                offset: 113,
                value: u32::from(universe),
            }),
            "universe {universe} refused on decode"
        );
    }
}

#[test]
fn slot_counts_0_1_511_512() {
    for count in [0usize, 1, 511, 512] {
        let slots: Vec<u8> = (0..count).map(|i| (i % 251) as u8).collect();
        let bytes = data_packet(9, &slots).encode().expect("encodes");
        assert_eq!(bytes.len(), 126 + count, "{count} slots: packet length");
        assert_eq!(
            u16::from_be_bytes([bytes[123], bytes[124]]),
            count as u16 + 1,
            "{count} slots: property value count includes the start code"
        );
        assert_eq!(
            u16::from_be_bytes([bytes[16], bytes[17]]) & 0x0fff,
            (110 + count) as u16,
            "{count} slots: root length"
        );
        assert_eq!(
            &*decode_data(&bytes).slots,
            &slots[..],
            "{count} slots decode"
        );
    }
}

#[test]
fn more_than_512_slots_refused() {
    let slots = [0u8; 513];
    assert_eq!(
        data_packet(1, &slots).encode(),
        Err(SacnError::Invalid {
            field: "property value count",
            offset: 123,
            value: 514,
        }),
        "513 slots cannot be encoded"
    );
    // Hand-build a consistent 513-slot packet: every length agrees, only the count is too big.
    let mut bytes = data_packet(1, &[0u8; 512])
        .encode()
        .expect("512 slots encode");
    bytes.push(0);
    let total = bytes.len();
    let set_len = |bytes: &mut Vec<u8>, at: usize, len: usize| {
        bytes[at..at + 2].copy_from_slice(&(0x7000 | len as u16).to_be_bytes());
    };
    set_len(&mut bytes, 16, total - 16);
    set_len(&mut bytes, 38, total - 38);
    set_len(&mut bytes, 115, total - 115);
    bytes[123..125].copy_from_slice(&514u16.to_be_bytes());
    assert_eq!(
        sacn::decode(&bytes),
        Err(SacnError::Invalid {
            field: "property value count",
            offset: 123,
            value: 514,
        }),
        "a 513-slot packet is refused on decode"
    );
}

#[test]
fn one_byte_short_is_incomplete_one_byte_long_is_ignored() {
    let bytes = data_packet_bytes();
    assert_eq!(
        sacn::decode(&bytes[..bytes.len() - 1]),
        Err(SacnError::Incomplete {
            needed: 130,
            available: 129,
        }),
        "one byte short"
    );
    let mut long = bytes.clone();
    long.push(0xff);
    assert_eq!(
        decode_data(&long),
        decode_data(&bytes),
        "a trailing byte after the root PDU is ignored"
    );
    // Every prefix of a valid packet is incomplete, never invalid, never a panic.
    for len in 0..bytes.len() {
        assert!(
            sacn::decode(&bytes[..len]).is_err_and(|e| e.is_incomplete()),
            "prefix of {len} bytes reads as incomplete"
        );
    }
    let sync = SyncPacket {
        cid: CID,
        sequence: 0,
        sync_address: 1,
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        sacn::decode(&sync[..48]),
        Err(SacnError::Incomplete {
            needed: 49,
            available: 48,
        }),
        "sync packet one byte short"
    );
}

/// Each case: (what to corrupt, offset, new bytes, expected error).
#[test]
fn invalid_fields_are_named_with_their_offset() {
    let cases: &[(&str, usize, &[u8], SacnError)] = &[
        (
            "preamble size",
            0,
            &[0x00, 0x11],
            SacnError::Invalid {
                field: "preamble size",
                offset: 0,
                value: 0x11,
            },
        ),
        (
            "post-amble size",
            2,
            &[0x00, 0x01],
            SacnError::Invalid {
                field: "post-amble size",
                offset: 2,
                value: 1,
            },
        ),
        (
            "ACN packet identifier",
            8,
            b"X",
            SacnError::Invalid {
                field: "ACN packet identifier",
                offset: 8,
                value: u32::from(b'X'),
            },
        ),
        (
            "root flags",
            16,
            &[0x60, 0x72],
            SacnError::Invalid {
                field: "root layer flags",
                offset: 16,
                value: 6,
            },
        ),
        (
            "root vector",
            18,
            &[0x00, 0x00, 0x00, 0x05],
            SacnError::Invalid {
                field: "root layer vector",
                offset: 18,
                value: 5,
            },
        ),
        (
            "framing flags",
            38,
            &[0xf0, 0x5c],
            SacnError::Invalid {
                field: "framing layer flags",
                offset: 38,
                value: 0xf,
            },
        ),
        (
            "framing length one short of the root's",
            38,
            &[0x70, 0x5b],
            SacnError::Invalid {
                field: "framing layer length",
                offset: 38,
                value: 91,
            },
        ),
        (
            "framing vector",
            40,
            &[0x00, 0x00, 0x00, 0x01],
            SacnError::Invalid {
                field: "framing layer vector",
                offset: 40,
                value: 1,
            },
        ),
        (
            "priority 201",
            108,
            &[201],
            SacnError::Invalid {
                field: "priority",
                offset: 108,
                value: 201,
            },
        ),
        (
            "sync address 64000",
            109,
            &[0xfa, 0x00],
            SacnError::Invalid {
                field: "synchronization address",
                offset: 109,
                value: 64000,
            },
        ),
        (
            "DMP flags",
            115,
            &[0x30, 0x0f],
            SacnError::Invalid {
                field: "DMP layer flags",
                offset: 115,
                value: 3,
            },
        ),
        (
            "DMP length one too long",
            115,
            &[0x70, 0x10],
            SacnError::Invalid {
                field: "DMP layer length",
                offset: 115,
                value: 16,
            },
        ),
        (
            "DMP vector",
            117,
            &[0x01],
            SacnError::Invalid {
                field: "DMP vector",
                offset: 117,
                value: 1,
            },
        ),
        (
            "address & data type",
            118,
            &[0xa2],
            SacnError::Invalid {
                field: "address type and data type",
                offset: 118,
                value: 0xa2,
            },
        ),
        (
            "first property address",
            119,
            &[0x00, 0x01],
            SacnError::Invalid {
                field: "first property address",
                offset: 119,
                value: 1,
            },
        ),
        (
            "address increment",
            121,
            &[0x00, 0x02],
            SacnError::Invalid {
                field: "address increment",
                offset: 121,
                value: 2,
            },
        ),
        (
            "property count disagrees with DMP length",
            123,
            &[0x00, 0x04],
            SacnError::Invalid {
                field: "property value count",
                offset: 123,
                value: 4,
            },
        ),
        (
            "property count 0 (no start code)",
            123,
            &[0x00, 0x00],
            SacnError::Invalid {
                field: "property value count",
                offset: 123,
                value: 0,
            },
        ),
    ];
    for (what, offset, patch, expected) in cases {
        let mut bytes = data_packet_bytes();
        bytes[*offset..*offset + patch.len()].copy_from_slice(patch);
        assert_eq!(sacn::decode(&bytes).as_ref(), Err(expected), "{what}");
    }
}

#[test]
fn root_length_beyond_buffer_is_incomplete_and_too_small_is_invalid() {
    let mut bytes = data_packet_bytes();
    bytes[16..18].copy_from_slice(&[0x70, 0x73]); // one more than there is
    assert_eq!(
        sacn::decode(&bytes),
        Err(SacnError::Incomplete {
            needed: 131,
            available: 130,
        }),
        "root length past the buffer"
    );
    bytes[16..18].copy_from_slice(&[0x70, 0x10]); // 16: not even the CID fits
    assert_eq!(
        sacn::decode(&bytes),
        Err(SacnError::Invalid {
            field: "root layer length",
            offset: 16,
            value: 16,
        }),
        "root length too small for a root layer"
    );
}

#[test]
fn source_name_is_nul_terminated_and_lossy() {
    let mut bytes = data_packet_bytes();
    // A name that fills all 64 bytes with no NUL is taken whole (lenient).
    bytes[44..108].copy_from_slice(&[b'a'; 64]);
    assert_eq!(
        decode_data(&bytes).source_name,
        "a".repeat(64),
        "64-byte name"
    );
    // Invalid UTF-8 is replaced, not refused.
    bytes[44..108].copy_from_slice(&padded(&[b'o', 0xff, b'k'], 64));
    assert_eq!(decode_data(&bytes).source_name, "o\u{fffd}k", "lossy UTF-8");

    let long = "x".repeat(64);
    let mut packet = data_packet(1, &[]);
    packet.source_name = Cow::Borrowed(&long);
    assert_eq!(
        packet.encode(),
        Err(SacnError::Invalid {
            field: "source name",
            offset: 44,
            value: 64,
        }),
        "a 64-byte name leaves no room for the NUL"
    );
    packet.source_name = Cow::Borrowed("a\0b");
    assert_eq!(
        packet.encode(),
        Err(SacnError::Invalid {
            field: "source name",
            offset: 45,
            value: 0,
        }),
        "a NUL inside the name is refused"
    );
    let max = "é".repeat(31) + "x"; // 63 bytes of UTF-8
    packet.source_name = Cow::Borrowed(&max);
    let bytes = packet.encode().expect("63-byte name encodes");
    assert_eq!(
        decode_data(&bytes).source_name,
        max,
        "63-byte UTF-8 name round-trips"
    );
}

#[test]
fn sync_and_discovery_refusals() {
    for sync_address in [0, 64000] {
        assert_eq!(
            SyncPacket {
                cid: CID,
                sequence: 0,
                sync_address,
            }
            .encode(),
            Err(SacnError::Invalid {
                field: "synchronization address",
                offset: 45,
                value: u32::from(sync_address),
            }),
            "sync packet on address {sync_address}"
        );
    }
    let mut sync = SyncPacket {
        cid: CID,
        sequence: 0,
        sync_address: 1,
    }
    .encode()
    .expect("encodes");
    sync[45..47].copy_from_slice(&[0, 0]);
    assert!(
        matches!(
            sacn::decode(&sync),
            Err(SacnError::Invalid {
                field: "synchronization address",
                ..
            })
        ),
        "sync address 0 refused on decode"
    );

    let page = DiscoveryPacket {
        cid: CID,
        source_name: Cow::Borrowed("x"),
        page: 0,
        last_page: 0,
        universes: vec![1, 3, 2],
    };
    assert_eq!(
        page.encode(),
        Err(SacnError::Invalid {
            field: "list of universes",
            offset: 124,
            value: 2,
        }),
        "unsorted universes refused on encode"
    );
    let mut bytes = DiscoveryPacket {
        universes: vec![1, 2, 3],
        ..page.clone()
    }
    .encode()
    .expect("sorted list encodes");
    bytes[124..126].copy_from_slice(&[0, 2]); // 1, 2, 2
    assert_eq!(
        sacn::decode(&bytes),
        Err(SacnError::Invalid {
            field: "list of universes",
            offset: 124,
            value: 2,
        }),
        "a repeated universe is refused on decode"
    );
    let mut bytes = DiscoveryPacket {
        universes: vec![1],
        ..page.clone()
    }
    .encode()
    .expect("encodes");
    bytes[118] = 1; // page 1 of last page 0
    assert_eq!(
        sacn::decode(&bytes),
        Err(SacnError::Invalid {
            field: "page",
            offset: 118,
            value: 1,
        }),
        "page past last page refused"
    );
    let too_many = DiscoveryPacket {
        universes: (1..=513).collect(),
        ..page
    };
    assert!(
        matches!(
            too_many.encode(),
            Err(SacnError::Invalid {
                field: "universe discovery layer length",
                ..
            })
        ),
        "513 universes on one page refused"
    );
}

#[test]
fn into_owned_outlives_the_datagram() {
    let owned = {
        let bytes = data_packet_bytes();
        decode_data(&bytes).into_owned()
    };
    assert_eq!(owned.source_name, "RocKontrol", "name survives");
    assert_eq!(&*owned.slots, &[0x01, 0x02, 0x7f, 0xff], "slots survive");
}
