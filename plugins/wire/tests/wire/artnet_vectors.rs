//! Art-Net 4 byte vectors and edge cases.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use rockontrol_wire::artnet::{
    self, ArtDmx, ArtNetError, ArtPacket, ArtPoll, ArtPollReply, ArtSync, ArtTimeCode, PortAddress,
};
use rockontrol_wire::timecode::{FrameRate, Timecode};

use crate::padded;

fn port(value: u16) -> PortAddress {
    PortAddress::new(value).expect("test port-address fits 15 bits")
}

fn art_dmx_bytes() -> Vec<u8> {
    [
        &b"Art-Net\0"[..],   // ID
        &[0x00, 0x50],       // OpCode OpDmx 0x5000, low byte first
        &[0x00, 0x0e],       // ProtVerHi, ProtVerLo: 14
        &[0x2a],             // Sequence 42
        &[0x01],             // Physical 1
        &[0x23],             // SubUni: Sub-Net 2, Universe 3
        &[0x01],             // Net 1
        &[0x00, 0x04],       // LengthHi, Length: 4 (3 slots padded to even)
        &[0x10, 0x20, 0x30], // Data: slots 1..=3
        &[0x00],             // Data: pad to even length
    ]
    .concat()
}

#[test]
fn art_dmx_matches_spec_bytes() {
    let data = [0x10, 0x20, 0x30];
    let packet = ArtDmx {
        sequence: 42,
        physical: 1,
        port_address: PortAddress::from_parts(1, 2, 3).expect("fits"),
        data: Cow::Borrowed(&data),
    };
    let expected = art_dmx_bytes();
    assert_eq!(packet.encode().expect("encodes"), expected, "ArtDmx bytes");
    assert_eq!(
        packet.encoded_len(),
        22,
        "encoded_len includes the pad byte"
    );
    let decoded = ArtDmx::decode(&expected).expect("decodes");
    assert_eq!(decoded.sequence, 42, "Sequence");
    assert_eq!(decoded.physical, 1, "Physical");
    assert_eq!(decoded.port_address.get(), 0x0123, "Port-Address");
    assert_eq!(decoded.port_address.net(), 1, "Net");
    assert_eq!(decoded.port_address.sub_net(), 2, "Sub-Net");
    assert_eq!(decoded.port_address.universe(), 3, "Universe");
    assert_eq!(
        &*decoded.data,
        &[0x10, 0x20, 0x30, 0x00],
        "Data is Length bytes, pad included"
    );
    assert!(
        matches!(artnet::decode(&expected), Ok(ArtPacket::Dmx(ref d)) if *d == decoded),
        "generic decode agrees"
    );
}

#[test]
fn port_address_edges() {
    for (value, sub_uni, net) in [(0u16, 0x00u8, 0x00u8), (32767, 0xff, 0x7f)] {
        let address = port(value);
        assert_eq!(address.sub_uni(), sub_uni, "SubUni of {value}");
        assert_eq!(address.net(), net, "Net of {value}");
        let packet = ArtDmx {
            sequence: 0,
            physical: 0,
            port_address: address,
            data: Cow::Borrowed(&[1, 2]),
        };
        let bytes = packet.encode().expect("encodes");
        assert_eq!(&bytes[14..16], &[sub_uni, net], "wire bytes of {value}");
        assert_eq!(
            ArtDmx::decode(&bytes).expect("decodes").port_address,
            address,
            "Port-Address {value} round-trips"
        );
    }
    assert_eq!(PortAddress::new(32768), None, "32768 does not fit");
    assert!(
        PortAddress::try_from(40000u16).is_err(),
        "TryFrom refuses 40000"
    );
    assert_eq!(
        PortAddress::from_parts(128, 0, 0),
        None,
        "Net 128 does not fit"
    );
    assert_eq!(
        PortAddress::from_parts(0, 16, 0),
        None,
        "Sub-Net 16 does not fit"
    );
    assert_eq!(
        PortAddress::from_parts(0, 0, 16),
        None,
        "Universe 16 does not fit"
    );
    assert_eq!(
        PortAddress::from_parts(127, 15, 15),
        Some(PortAddress::MAX),
        "all parts at max"
    );
    assert_eq!(
        port(0x0123).to_string(),
        "1:2:3",
        "Display net:sub-net:universe"
    );
    assert_eq!(u16::from(port(300)), 300, "into u16");

    let mut bytes = art_dmx_bytes();
    bytes[15] = 0x80; // Net with bit 7 set
    assert_eq!(
        ArtDmx::decode(&bytes),
        Err(ArtNetError::Invalid {
            field: "Net",
            offset: 15,
            value: 0x80,
        }),
        "Net above 0x7f"
    );
}

#[test]
fn art_dmx_odd_and_full_lengths() {
    for (slots, length) in [(1usize, 2usize), (2, 2), (511, 512), (512, 512)] {
        let data: Vec<u8> = (0..slots).map(|i| (i as u8).wrapping_add(1)).collect();
        let bytes = ArtDmx {
            sequence: 1,
            physical: 0,
            port_address: port(0),
            data: Cow::Borrowed(&data),
        }
        .encode()
        .expect("encodes");
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[16], bytes[17]])),
            length,
            "{slots} slots: Length field"
        );
        assert_eq!(bytes.len(), 18 + length, "{slots} slots: packet size");
        let decoded = ArtDmx::decode(&bytes).expect("decodes");
        assert_eq!(&decoded.data[..slots], &data[..], "{slots} slots: data");
        assert!(
            decoded.data[slots..].iter().all(|&b| b == 0),
            "{slots} slots: pad is zero"
        );
    }
    for slots in [0usize, 513] {
        let data = vec![0u8; slots];
        assert_eq!(
            ArtDmx {
                sequence: 0,
                physical: 0,
                port_address: port(0),
                data: Cow::Borrowed(&data),
            }
            .encode(),
            Err(ArtNetError::Invalid {
                field: "Length",
                offset: 16,
                value: slots as u32,
            }),
            "{slots} slots refused"
        );
    }
}

#[test]
fn art_dmx_length_checks() {
    let bytes = art_dmx_bytes();
    assert_eq!(
        ArtDmx::decode(&bytes[..bytes.len() - 1]),
        Err(ArtNetError::Incomplete {
            needed: 22,
            available: 21,
        }),
        "one byte short of Length"
    );
    let mut long = bytes.clone();
    long.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(
        &*ArtDmx::decode(&long).expect("longer datagram decodes").data,
        &[0x10, 0x20, 0x30, 0x00],
        "data cut to Length, trailing bytes ignored"
    );
    let mut odd = bytes.clone();
    odd[17] = 3; // an (illegal but seen) odd Length
    assert_eq!(
        &*ArtDmx::decode(&odd).expect("odd Length accepted").data,
        &[0x10, 0x20, 0x30],
        "odd Length honoured on receipt"
    );
    for (length, expected) in [
        (
            0u16,
            ArtNetError::Invalid {
                field: "Length",
                offset: 16,
                value: 0,
            },
        ),
        (
            513,
            ArtNetError::Invalid {
                field: "Length",
                offset: 16,
                value: 513,
            },
        ),
        (
            6,
            ArtNetError::Incomplete {
                needed: 24,
                available: 22,
            },
        ),
    ] {
        let mut patched = bytes.clone();
        patched[16..18].copy_from_slice(&length.to_be_bytes());
        assert_eq!(ArtDmx::decode(&patched), Err(expected), "Length {length}");
    }
    assert_eq!(
        ArtDmx::decode(&bytes[..17]),
        Err(ArtNetError::Incomplete {
            needed: 18,
            available: 17,
        }),
        "header one byte short"
    );
}

#[test]
fn header_checks() {
    let bytes = art_dmx_bytes();
    let mut wrong_id = bytes.clone();
    wrong_id[3] = b'X';
    assert_eq!(
        ArtDmx::decode(&wrong_id),
        Err(ArtNetError::Invalid {
            field: "ID",
            offset: 3,
            value: u32::from(b'X'),
        }),
        "wrong ID"
    );
    assert_eq!(
        artnet::decode(b"Art-X"),
        Err(ArtNetError::Invalid {
            field: "ID",
            offset: 4,
            value: u32::from(b'X'),
        }),
        "a short non-Art-Net datagram is invalid, not incomplete"
    );
    assert_eq!(
        artnet::decode(b"Art-"),
        Err(ArtNetError::Incomplete {
            needed: 8,
            available: 4,
        }),
        "a short prefix of the ID is incomplete"
    );
    let mut wrong_opcode = bytes.clone();
    wrong_opcode[8..10].copy_from_slice(&0x2000u16.to_le_bytes());
    assert_eq!(
        ArtDmx::decode(&wrong_opcode),
        Err(ArtNetError::Invalid {
            field: "OpCode",
            offset: 8,
            value: 0x2000,
        }),
        "ArtDmx::decode refuses another OpCode"
    );
    let mut big_endian_opcode = bytes.clone();
    big_endian_opcode[8..10].copy_from_slice(&[0x50, 0x00]);
    assert_eq!(
        artnet::decode(&big_endian_opcode),
        Err(ArtNetError::Unsupported { opcode: 0x0050 }),
        "an OpCode sent big-endian is not OpDmx"
    );
    let mut old = bytes.clone();
    old[10..12].copy_from_slice(&[0x00, 0x0d]);
    assert_eq!(
        ArtDmx::decode(&old),
        Err(ArtNetError::Invalid {
            field: "ProtVer",
            offset: 10,
            value: 13,
        }),
        "ProtVer 13 refused"
    );
    let mut newer = bytes.clone();
    newer[10..12].copy_from_slice(&[0x00, 0x0f]);
    assert!(ArtDmx::decode(&newer).is_ok(), "ProtVer 15 accepted");
    let mut address = bytes;
    address[8..10].copy_from_slice(&0x6000u16.to_le_bytes());
    assert_eq!(
        artnet::decode(&address),
        Err(ArtNetError::Unsupported { opcode: 0x6000 }),
        "ArtAddress is a valid header this crate does not decode"
    );
}

#[test]
fn art_sync_is_14_bytes() {
    let expected: Vec<u8> = [
        &b"Art-Net\0"[..], // ID
        &[0x00, 0x52],     // OpCode OpSync 0x5200, low byte first
        &[0x00, 0x0e],     // ProtVerHi, ProtVerLo: 14
        &[0x00],           // Aux1
        &[0x00],           // Aux2
    ]
    .concat();
    assert_eq!(ArtSync.encode(), expected, "ArtSync bytes");
    assert_eq!(ArtSync::LEN, 14, "ArtSync length");
    assert_eq!(ArtSync::decode(&expected), Ok(ArtSync), "decodes");
    assert_eq!(
        artnet::decode(&expected),
        Ok(ArtPacket::Sync(ArtSync)),
        "generic decode"
    );
    assert_eq!(
        ArtSync::decode(&expected[..13]),
        Err(ArtNetError::Incomplete {
            needed: 14,
            available: 13,
        }),
        "one byte short"
    );
    let mut aux = expected.clone();
    aux[12] = 0xff;
    aux.push(0);
    assert_eq!(
        ArtSync::decode(&aux),
        Ok(ArtSync),
        "Aux ignored, longer accepted"
    );
}

fn art_poll_bytes() -> Vec<u8> {
    [
        &b"Art-Net\0"[..], // ID
        &[0x00, 0x20],     // OpCode OpPoll 0x2000, low byte first
        &[0x00, 0x0e],     // ProtVerHi, ProtVerLo: 14
        &[0x22],           // Flags: targeted (bit 5), reply on change (bit 1)
        &[0x10],           // DiagPriority: DpLow
        &[0x01, 0x23],     // TargetPortAddressTopHi, Lo: 0x0123
        &[0x00, 0x01],     // TargetPortAddressBottomHi, Lo: 1
        &[0x7f, 0xf0],     // EstaManHi, EstaManLo: 0x7ff0
        &[0x12, 0x34],     // OemHi, OemLo: 0x1234
    ]
    .concat()
}

#[test]
fn art_poll_long_form() {
    let poll = ArtPoll {
        flags: ArtPoll::FLAG_TARGETED | ArtPoll::FLAG_REPLY_ON_CHANGE,
        diag_priority: 0x10,
        target_top: port(0x0123),
        target_bottom: port(1),
        esta_man: 0x7ff0,
        oem: 0x1234,
    };
    let expected = art_poll_bytes();
    assert_eq!(
        poll.encode(),
        expected,
        "ArtPoll bytes (22-byte Art-Net 4 form)"
    );
    assert_eq!(
        ArtPoll::decode(&expected),
        Ok(poll),
        "decodes field for field"
    );
    assert_eq!(
        artnet::decode(&expected),
        Ok(ArtPacket::Poll(poll)),
        "generic decode"
    );
}

#[test]
fn art_poll_short_forms() {
    let bytes = art_poll_bytes();
    assert_eq!(
        ArtPoll::decode(&bytes[..14]),
        Ok(ArtPoll {
            flags: 0x22,
            diag_priority: 0x10,
            ..ArtPoll::default()
        }),
        "14-byte form: Flags and DiagPriority, the rest 0"
    );
    assert_eq!(
        ArtPoll::decode(&bytes[..18]),
        Ok(ArtPoll {
            flags: 0x22,
            diag_priority: 0x10,
            target_top: port(0x0123),
            target_bottom: port(1),
            ..ArtPoll::default()
        }),
        "18-byte form: with the target range"
    );
    assert_eq!(
        ArtPoll::decode(&bytes[..12]),
        Ok(ArtPoll::default()),
        "12-byte form: header only"
    );
    assert_eq!(
        ArtPoll::decode(&bytes[..11]),
        Err(ArtNetError::Incomplete {
            needed: 12,
            available: 11,
        }),
        "11 bytes: ProtVer cut"
    );
    let mut wide = bytes;
    wide[14..16].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(
        ArtPoll::decode(&wide).expect("decodes").target_top,
        PortAddress::MAX,
        "a target top above 32767 means the top"
    );
}

struct ReplyFields {
    reply: ArtPollReply,
    bytes: Vec<u8>,
}

fn art_poll_reply() -> ReplyFields {
    let short_name = padded(b"RocKontrol", 18);
    let long_name = padded(b"RocKontrol media server", 64);
    let node_report = padded(b"#0001 [0007] Power On Tests successful", 64);
    let bytes: Vec<u8> = [
        &b"Art-Net\0"[..],                     // ID
        &[0x00, 0x21],                         // OpCode OpPollReply 0x2100, low byte first
        &[192, 168, 1, 20],                    // IP address
        &[0x36, 0x19],                         // Port 0x1936, low byte first
        &[0x01, 0x02],                         // VersInfoH, VersInfoL: 0x0102
        &[0x01],                               // NetSwitch
        &[0x02],                               // SubSwitch
        &[0x12, 0x34],                         // OemHi, Oem: 0x1234
        &[0x00],                               // Ubea version
        &[0xd0],                               // Status1
        &[0xf0, 0x7f],                         // EstaManLo, EstaManHi: 0x7ff0
        &short_name,                           // ShortName[18]
        &long_name,                            // LongName[64]
        &node_report,                          // NodeReport[64]
        &[0x00, 0x02],                         // NumPortsHi, NumPortsLo: 2
        &[0x80, 0x80, 0x00, 0x00],             // PortTypes: two DMX512 outputs
        &[0x08, 0x08, 0x00, 0x00],             // GoodInput
        &[0x80, 0x82, 0x00, 0x00],             // GoodOutputA
        &[0x00, 0x01, 0x00, 0x00],             // SwIn
        &[0x03, 0x04, 0x00, 0x00],             // SwOut
        &[0x64],                               // AcnPriority 100
        &[0x00],                               // SwMacro
        &[0x00],                               // SwRemote
        &[0x00, 0x00, 0x00],                   // Spare
        &[0x02],                               // Style: StMedia
        &[0x02, 0x42, 0xac, 0x11, 0x00, 0x02], // MAC, high byte first
        &[192, 168, 1, 20],                    // BindIp
        &[0x01],                               // BindIndex: root
        &[0x0e],                               // Status2
        &[0xc0, 0x80, 0x00, 0x00],             // GoodOutputB
        &[0x20],                               // Status3
        &[0x7f, 0xf0, 0x00, 0x00, 0x00, 0x01], // DefaultRespUID
        &[0x00, 0x05],                         // UserHi, UserLo
        &[0x00, 0x2c],                         // RefreshRateHi, RefreshRateLo: 44 Hz
        &[0x00; 11],                           // Filler
    ]
    .concat();
    let reply = ArtPollReply {
        ip: Ipv4Addr::new(192, 168, 1, 20),
        port: 0x1936,
        version_info: 0x0102,
        net_switch: 1,
        sub_switch: 2,
        oem: 0x1234,
        ubea_version: 0,
        status1: 0xd0,
        esta_man: 0x7ff0,
        short_name: "RocKontrol".into(),
        long_name: "RocKontrol media server".into(),
        node_report: "#0001 [0007] Power On Tests successful".into(),
        num_ports: 2,
        port_types: [0x80, 0x80, 0, 0],
        good_input: [0x08, 0x08, 0, 0],
        good_output_a: [0x80, 0x82, 0, 0],
        sw_in: [0, 1, 0, 0],
        sw_out: [3, 4, 0, 0],
        acn_priority: 100,
        sw_macro: 0,
        sw_remote: 0,
        style: ArtPollReply::STYLE_MEDIA,
        mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        bind_ip: Ipv4Addr::new(192, 168, 1, 20),
        bind_index: 1,
        status2: 0x0e,
        good_output_b: [0xc0, 0x80, 0, 0],
        status3: 0x20,
        default_responder_uid: [0x7f, 0xf0, 0, 0, 0, 1],
        user: 5,
        refresh_rate: 44,
    };
    ReplyFields { reply, bytes }
}

#[test]
fn art_poll_reply_matches_spec_bytes() {
    let ReplyFields { reply, bytes } = art_poll_reply();
    assert_eq!(bytes.len(), 239, "full Art-Net 4 reply is 239 bytes");
    assert_eq!(
        reply.encode().expect("encodes"),
        bytes,
        "ArtPollReply bytes"
    );
    let decoded = ArtPollReply::decode(&bytes).expect("decodes");
    assert_eq!(decoded, reply, "every field decodes");
    assert_eq!(
        decoded.output_port_address(1),
        Some(port(0x0124)),
        "output port 2 is 1:2:4"
    );
    assert_eq!(
        decoded.input_port_address(1),
        Some(port(0x0121)),
        "input port 2 is 1:2:1"
    );
    assert_eq!(decoded.output_port_address(4), None, "only 4 ports");
    assert!(
        matches!(artnet::decode(&bytes), Ok(ArtPacket::PollReply(ref r)) if **r == reply),
        "generic decode"
    );
}

#[test]
fn art_poll_reply_lengths() {
    let ReplyFields { reply, bytes } = art_poll_reply();
    let old = ArtPollReply::decode(&bytes[..207]).expect("207-byte reply decodes");
    assert_eq!(old.mac, reply.mac, "fields up to the MAC are read");
    assert_eq!(old.short_name, reply.short_name, "short name read");
    assert_eq!(
        old.bind_ip,
        Ipv4Addr::UNSPECIFIED,
        "BindIp past the end reads 0"
    );
    assert_eq!(old.refresh_rate, 0, "RefreshRate past the end reads 0");
    let mid = ArtPollReply::decode(&bytes[..214]).expect("214-byte reply decodes");
    assert_eq!(mid.status2, reply.status2, "Status2 present at 214 bytes");
    assert_eq!(
        mid.good_output_b,
        [0xc0, 0, 0, 0],
        "GoodOutputB cut after one byte"
    );
    assert_eq!(
        ArtPollReply::decode(&bytes[..206]),
        Err(ArtNetError::Incomplete {
            needed: 207,
            available: 206,
        }),
        "206 bytes is too short"
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xee; 20]);
    assert_eq!(
        ArtPollReply::decode(&longer),
        Ok(reply.clone()),
        "a longer (future) reply decodes"
    );
    let mut wrong = bytes;
    wrong[8] = 0x00;
    wrong[9] = 0x20;
    assert_eq!(
        ArtPollReply::decode(&wrong),
        Err(ArtNetError::Invalid {
            field: "OpCode",
            offset: 8,
            value: 0x2000,
        }),
        "an ArtPoll is not a reply"
    );
}

#[test]
fn art_poll_reply_names_must_fit() {
    let ReplyFields { mut reply, .. } = art_poll_reply();
    reply.short_name = "x".repeat(18);
    assert_eq!(
        reply.encode(),
        Err(ArtNetError::Invalid {
            field: "ShortName",
            offset: 26,
            value: 18,
        }),
        "an 18-byte short name leaves no room for the NUL"
    );
    reply.short_name = "x".repeat(17);
    reply.long_name = "y".repeat(64);
    assert_eq!(
        reply.encode(),
        Err(ArtNetError::Invalid {
            field: "LongName",
            offset: 44,
            value: 64,
        }),
        "a 64-byte long name is refused"
    );
    reply.long_name = "y".repeat(63);
    let bytes = reply.encode().expect("names at their maximum encode");
    let decoded = ArtPollReply::decode(&bytes).expect("decodes");
    assert_eq!(
        decoded.short_name.len(),
        17,
        "17-byte short name round-trips"
    );
    assert_eq!(decoded.long_name.len(), 63, "63-byte long name round-trips");
}

#[test]
fn art_time_code_matches_spec_bytes() {
    let expected: Vec<u8> = [
        &b"Art-Net\0"[..], // ID
        &[0x00, 0x97],     // OpCode OpTimeCode 0x9700, low byte first
        &[0x00, 0x0e],     // ProtVerHi, ProtVerLo: 14
        &[0x00],           // Filler1
        &[0x00],           // StreamId: master
        &[0x04],           // Frames 4
        &[0x03],           // Seconds 3
        &[0x02],           // Minutes 2
        &[0x01],           // Hours 1
        &[0x01],           // Type: EBU 25 fps
    ]
    .concat();
    let packet = ArtTimeCode {
        stream_id: 0,
        timecode: Timecode::new(1, 2, 3, 4, FrameRate::Ebu25).expect("valid"),
    };
    assert_eq!(
        packet.encode().expect("encodes"),
        expected,
        "ArtTimeCode bytes"
    );
    assert_eq!(ArtTimeCode::decode(&expected), Ok(packet), "decodes");
    assert_eq!(
        artnet::decode(&expected),
        Ok(ArtPacket::TimeCode(packet)),
        "generic decode"
    );
    assert_eq!(packet.timecode.to_string(), "01:02:03:04", "label");

    for (type_byte, rate) in [
        (0, FrameRate::Film24),
        (1, FrameRate::Ebu25),
        (2, FrameRate::Df2997),
        (3, FrameRate::Smpte30),
    ] {
        let mut bytes = expected.clone();
        bytes[18] = type_byte;
        assert_eq!(
            ArtTimeCode::decode(&bytes).expect("decodes").timecode.rate,
            rate,
            "Type {type_byte}"
        );
    }
    let cases: &[(usize, u8, ArtNetError)] = &[
        (
            18,
            4,
            ArtNetError::Invalid {
                field: "Type",
                offset: 18,
                value: 4,
            },
        ),
        (
            14,
            25,
            ArtNetError::Invalid {
                field: "Frames",
                offset: 14,
                value: 25,
            },
        ),
        (
            15,
            60,
            ArtNetError::Invalid {
                field: "Seconds",
                offset: 15,
                value: 60,
            },
        ),
        (
            16,
            60,
            ArtNetError::Invalid {
                field: "Minutes",
                offset: 16,
                value: 60,
            },
        ),
        (
            17,
            24,
            ArtNetError::Invalid {
                field: "Hours",
                offset: 17,
                value: 24,
            },
        ),
    ];
    for (offset, value, error) in cases {
        let mut bytes = expected.clone();
        bytes[*offset] = *value;
        assert_eq!(
            ArtTimeCode::decode(&bytes).as_ref(),
            Err(error),
            "byte {offset} = {value}"
        );
    }
    assert_eq!(
        ArtTimeCode::decode(&expected[..18]),
        Err(ArtNetError::Incomplete {
            needed: 19,
            available: 18,
        }),
        "one byte short"
    );
    let bad = ArtTimeCode {
        stream_id: 0,
        timecode: Timecode {
            hours: 0,
            minutes: 1,
            seconds: 0,
            frames: 0,
            rate: FrameRate::Df2997,
        },
    };
    assert_eq!(
        bad.encode(),
        Err(ArtNetError::Invalid {
            field: "Frames",
            offset: 14,
            value: 0,
        }),
        "a dropped drop-frame label is refused on encode"
    );
}
