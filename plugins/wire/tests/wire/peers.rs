//! Byte-for-byte cross-checks against the `sacn` and `artnet_protocol` crates, where those are
//! right (see shared/interop/PEERS.md), and tests that pin down where they are not.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use ::sacn::packet::{
    AcnRootLayerProtocol, DataPacketDmpLayer, DataPacketFramingLayer, E131RootLayer,
    E131RootLayerData, SynchronizationPacketFramingLayer, UniverseDiscoveryPacketFramingLayer,
    UniverseDiscoveryPacketUniverseDiscoveryLayer,
};
use artnet_protocol::{ArtCommand, ArtTalkToMe, FrameType, Output, Poll, PollReply, Timecode};
use rockontrol_wire::artnet::{
    ArtDmx, ArtNetError, ArtPoll, ArtPollReply, ArtSync, ArtTimeCode, PortAddress,
};
use rockontrol_wire::sacn::{self as wire_sacn, DataPacket, DiscoveryPacket, Options, SyncPacket};
use rockontrol_wire::timecode::{self as wire_timecode, FrameRate};

const CID: [u8; 16] = [
    0x5c, 0x7b, 0x21, 0x0e, 0x9f, 0x33, 0x4b, 0x2a, 0x8c, 0x61, 0x00, 0x1d, 0xe4, 0x7a, 0x90, 0x01,
];

/// The `sacn` crate wants a `uuid::Uuid`; take one from a packet it parsed, so this crate needs
/// no `uuid` dependency of its own.
fn their_root<'a>(ours: &[u8], data: E131RootLayerData<'a>) -> AcnRootLayerProtocol<'a> {
    let cid = AcnRootLayerProtocol::parse(ours)
        .expect("the sacn crate parses our packet")
        .pdu
        .cid;
    AcnRootLayerProtocol {
        pdu: E131RootLayer { cid, data },
    }
}

#[test]
fn sacn_data_packets_match_the_sacn_crate() {
    let slot_sets: [Vec<u8>; 5] = [
        vec![],
        vec![0xff],
        vec![1, 2, 3, 4],
        (0..=255).collect(),
        (0..512).map(|i| (i * 7 % 256) as u8).collect(),
    ];
    let option_sets = [
        Options::default(),
        Options {
            preview: true,
            stream_terminated: false,
            force_synchronization: true,
        },
        Options {
            preview: false,
            stream_terminated: true,
            force_synchronization: false,
        },
    ];
    let longest_name = "n".repeat(63);
    for slots in &slot_sets {
        for (options, universe, priority, name) in [
            (option_sets[0], 1u16, 100u8, "RocKontrol"),
            (option_sets[1], 63999, 200, ""),
            (option_sets[2], 7962, 0, longest_name.as_str()),
        ] {
            let ours = DataPacket {
                cid: CID,
                source_name: Cow::Borrowed(name),
                priority,
                sync_address: 7962,
                sequence: 77,
                options,
                universe,
                start_code: 0,
                slots: Cow::Borrowed(slots),
            };
            let our_bytes = ours.encode().expect("encodes");
            let mut property_values = vec![ours.start_code];
            property_values.extend_from_slice(slots);
            let theirs = their_root(
                &our_bytes,
                E131RootLayerData::DataPacket(DataPacketFramingLayer {
                    source_name: Cow::Borrowed(name),
                    priority,
                    synchronization_address: 7962,
                    sequence_number: 77,
                    preview_data: options.preview,
                    stream_terminated: options.stream_terminated,
                    force_synchronization: options.force_synchronization,
                    universe,
                    data: DataPacketDmpLayer {
                        property_values: Cow::Owned(property_values),
                    },
                }),
            );
            let their_bytes = theirs.pack_alloc().expect("the sacn crate packs");
            let case = format!("{} slots, universe {universe}, {options:?}", slots.len());
            assert_eq!(
                our_bytes, their_bytes,
                "same bytes as the sacn crate: {case}"
            );
            assert_eq!(
                AcnRootLayerProtocol::parse(&our_bytes).expect("they parse ours"),
                theirs,
                "the sacn crate reads our fields back: {case}"
            );
            assert!(
                matches!(wire_sacn::decode(&their_bytes), Ok(wire_sacn::Packet::Data(ref d)) if *d == ours),
                "we read their packet: {case}"
            );
        }
    }
}

#[test]
fn sacn_sync_packets_match_the_sacn_crate() {
    for (sequence, sync_address) in [(0u8, 1u16), (255, 63999), (42, 7962)] {
        let ours = SyncPacket {
            cid: CID,
            sequence,
            sync_address,
        };
        let our_bytes = ours.encode().expect("encodes");
        let theirs = their_root(
            &our_bytes,
            E131RootLayerData::SynchronizationPacket(SynchronizationPacketFramingLayer {
                sequence_number: sequence,
                synchronization_address: sync_address,
            }),
        );
        assert_eq!(
            our_bytes,
            theirs.pack_alloc().expect("packs"),
            "sync {sequence}/{sync_address}: same bytes"
        );
        assert_eq!(
            AcnRootLayerProtocol::parse(&our_bytes).expect("they parse ours"),
            theirs,
            "sync {sequence}/{sync_address}: they read it back"
        );
    }
}

#[test]
fn sacn_discovery_packets_match_the_sacn_crate() {
    let lists: [Vec<u16>; 3] = [vec![], vec![1, 2, 7962, 63999], (1..=512).collect()];
    for universes in lists {
        let ours = DiscoveryPacket {
            cid: CID,
            source_name: Cow::Borrowed("RocKontrol master"),
            page: 1,
            last_page: 2,
            universes: universes.clone(),
        };
        let our_bytes = ours.encode().expect("encodes");
        let theirs = their_root(
            &our_bytes,
            E131RootLayerData::UniverseDiscoveryPacket(UniverseDiscoveryPacketFramingLayer {
                source_name: Cow::Borrowed("RocKontrol master"),
                data: UniverseDiscoveryPacketUniverseDiscoveryLayer {
                    page: 1,
                    last_page: 2,
                    universes: Cow::Owned(universes.clone()),
                },
            }),
        );
        let their_bytes = theirs.pack_alloc().expect("packs");
        assert_eq!(
            our_bytes,
            their_bytes,
            "{} universes: same bytes",
            universes.len()
        );
        assert_eq!(
            AcnRootLayerProtocol::parse(&our_bytes).expect("they parse ours"),
            theirs,
            "{} universes: they read it back",
            universes.len()
        );
        assert!(
            matches!(wire_sacn::decode(&their_bytes), Ok(wire_sacn::Packet::Discovery(ref d)) if *d == ours),
            "{} universes: we read theirs",
            universes.len()
        );
    }
}

fn their_port(value: u16) -> artnet_protocol::PortAddress {
    artnet_protocol::PortAddress::try_from(value).expect("fits 15 bits")
}

fn our_port(value: u16) -> PortAddress {
    PortAddress::new(value).expect("fits 15 bits")
}

#[test]
fn art_dmx_matches_artnet_protocol() {
    for (slots, address) in [
        (1usize, 0u16),
        (2, 1),
        (3, 0x0123),
        (511, 32767),
        (512, 300),
    ] {
        let data: Vec<u8> = (0..slots).map(|i| (i % 256) as u8).collect();
        let ours = ArtDmx {
            sequence: 9,
            physical: 2,
            port_address: our_port(address),
            data: Cow::Borrowed(&data),
        }
        .encode()
        .expect("encodes");
        let theirs = ArtCommand::Output(Output {
            sequence: 9,
            physical: 2,
            port_address: their_port(address),
            data: data.clone().into(),
            ..Output::default()
        })
        .write_to_buffer()
        .expect("artnet_protocol encodes");
        assert_eq!(ours, theirs, "{slots} slots to {address}: same bytes");
        match ArtCommand::from_buffer(&ours) {
            Ok(ArtCommand::Output(output)) => {
                assert_eq!(
                    u16::from(output.port_address),
                    address,
                    "they read the address"
                );
                assert_eq!(output.sequence, 9, "they read the sequence");
                assert_eq!(
                    &output.data.as_ref()[..slots],
                    &data[..],
                    "they read the data"
                );
            }
            other => panic!("artnet_protocol failed on our ArtDmx: {other:?}"),
        }
    }
}

#[test]
fn art_poll_matches_artnet_protocol_in_its_14_bytes() {
    let ours = ArtPoll {
        flags: ArtPoll::FLAG_REPLY_ON_CHANGE | ArtPoll::FLAG_DIAGNOSTICS,
        diag_priority: 0x80,
        ..ArtPoll::default()
    };
    let our_bytes = ours.encode();
    let theirs = ArtCommand::Poll(Poll {
        talk_to_me: ArtTalkToMe::EMIT_CHANGES | ArtTalkToMe::ENABLE_DIAGNOSTICS,
        diagnostics_priority: 0x80,
        ..Poll::default()
    })
    .write_to_buffer()
    .expect("encodes");
    assert_eq!(
        theirs.len(),
        14,
        "artnet_protocol sends the Art-Net 3 short form"
    );
    assert_eq!(
        &our_bytes[..14],
        &theirs[..],
        "same bytes as far as theirs goes"
    );
    assert_eq!(
        ArtPoll::decode(&theirs),
        Ok(ours),
        "we read their 14-byte poll (the long-form fields read as 0)"
    );
    match ArtCommand::from_buffer(&our_bytes) {
        Ok(ArtCommand::Poll(poll)) => {
            assert_eq!(poll.talk_to_me.bits(), ours.flags, "they read our flags");
            assert_eq!(poll.diagnostics_priority, 0x80, "they read our priority");
        }
        other => panic!("artnet_protocol failed on our 22-byte ArtPoll: {other:?}"),
    }
}

fn fixed<const N: usize>(text: &str) -> [u8; N] {
    let mut field = [0u8; N];
    field[..text.len()].copy_from_slice(text.as_bytes());
    field
}

#[test]
fn art_poll_reply_matches_artnet_protocol() {
    // artnet_protocol knows the layout up to Status2 and calls the rest filler: leave the
    // Art-Net 4 fields after Status2 at zero for a byte comparison.
    let ours = ArtPollReply {
        ip: Ipv4Addr::new(10, 0, 0, 7),
        version_info: 0x0103,
        net_switch: 0x12,
        sub_switch: 0x03,
        oem: 0x2be0,
        ubea_version: 1,
        status1: 0xe0,
        esta_man: 0x7ff0,
        short_name: "RocKontrol".into(),
        long_name: "RocKontrol receiver, stage left".into(),
        node_report: "#0001 [0042] OK".into(),
        num_ports: 4,
        port_types: [0x80; 4],
        good_input: [0x08; 4],
        good_output_a: [0x80, 0x80, 0, 0],
        sw_in: [0, 1, 2, 3],
        sw_out: [4, 5, 6, 7],
        acn_priority: 100,
        sw_macro: 0x01,
        sw_remote: 0x02,
        style: ArtPollReply::STYLE_CONTROLLER,
        mac: [0x02, 0, 0, 0, 0, 0x07],
        bind_ip: Ipv4Addr::new(10, 0, 0, 7),
        bind_index: 1,
        status2: 0x08,
        ..ArtPollReply::default()
    };
    let our_bytes = ours.encode().expect("encodes");
    let theirs = PollReply {
        address: Ipv4Addr::new(10, 0, 0, 7),
        port: 6454,
        version: [0x01, 0x03],
        port_address: [0x12, 0x03],
        oem: [0x2b, 0xe0],
        ubea_version: 1,
        status_1: 0xe0,
        esta_code: 0x7ff0,
        short_name: fixed("RocKontrol"),
        long_name: fixed("RocKontrol receiver, stage left"),
        node_report: fixed("#0001 [0042] OK"),
        num_ports: [0, 4],
        port_types: [0x80; 4],
        good_input: [0x08; 4],
        good_output: [0x80, 0x80, 0, 0],
        swin: [0, 1, 2, 3],
        swout: [4, 5, 6, 7],
        sw_video: 100,
        sw_macro: 0x01,
        sw_remote: 0x02,
        spare: [0; 3],
        style: 1,
        mac: [0x02, 0, 0, 0, 0, 0x07],
        bind_ip: [10, 0, 0, 7],
        bind_index: 1,
        status_2: 0x08,
        filler: [0; 26],
    };
    let their_bytes = ArtCommand::PollReply(Box::new(theirs))
        .write_to_buffer()
        .expect("encodes");
    assert_eq!(
        their_bytes.len(),
        239,
        "artnet_protocol sends 239 bytes too"
    );
    assert_eq!(our_bytes, their_bytes, "same bytes as artnet_protocol");
    assert_eq!(
        ArtPollReply::decode(&their_bytes),
        Ok(ours.clone()),
        "we read their reply"
    );
    match ArtCommand::from_buffer(&our_bytes) {
        Ok(ArtCommand::PollReply(reply)) => {
            assert_eq!(
                reply.esta_code, 0x7ff0,
                "they read the ESTA code (low byte first)"
            );
            assert_eq!(reply.port, 6454, "they read the port (low byte first)");
            assert_eq!(reply.swout, [4, 5, 6, 7], "they read SwOut");
        }
        other => panic!("artnet_protocol failed on our ArtPollReply: {other:?}"),
    }
}

#[test]
fn art_time_code_matches_artnet_protocol() {
    for (rate, frame_type, frames) in [
        (FrameRate::Film24, FrameType::Film, 23u8),
        (FrameRate::Ebu25, FrameType::EBU, 24),
        (FrameRate::Df2997, FrameType::DF, 29),
        (FrameRate::Smpte30, FrameType::SMPTE, 29),
    ] {
        let ours = ArtTimeCode {
            stream_id: 3,
            timecode: wire_timecode::Timecode::new(23, 59, 58, frames, rate).expect("valid"),
        }
        .encode()
        .expect("encodes");
        let theirs = ArtCommand::OpTimeCode(Timecode {
            version: [0, 14],
            filler1: 0,
            stream_id: 3,
            frames,
            seconds: 58,
            minutes: 59,
            hours: 23,
            frame_type,
        })
        .write_to_buffer()
        .expect("encodes");
        assert_eq!(ours, theirs, "{rate:?}: same bytes");
    }
}

/// PEERS.md: "encoding ArtSync gives a 10-byte packet". A correct ArtSync is 14 bytes (ID,
/// OpCode, ProtVerHi, ProtVerLo, Aux1, Aux2); ours is, and we refuse theirs as incomplete.
#[test]
fn peer_fault_artnet_protocol_art_sync_is_10_bytes() {
    let theirs = ArtCommand::Sync.write_to_buffer().expect("encodes");
    assert_eq!(
        theirs.len(),
        10,
        "artnet_protocol's ArtSync lacks ProtVer, Aux1 and Aux2"
    );
    assert_eq!(ArtSync.encode().len(), 14, "ours is 14 bytes");
    assert_eq!(
        ArtSync::decode(&theirs),
        Err(ArtNetError::Incomplete {
            needed: 12,
            available: 10,
        }),
        "their ArtSync lacks even ProtVer"
    );
}

/// PEERS.md: "ArtPollReply shorter than 239 bytes fails to parse". Older nodes send 207.
#[test]
fn peer_fault_artnet_protocol_refuses_short_poll_replies() {
    let ours = ArtPollReply {
        short_name: "old node".into(),
        ..ArtPollReply::default()
    }
    .encode()
    .expect("encodes");
    let short = &ours[..207];
    assert!(
        ArtCommand::from_buffer(short).is_err(),
        "artnet_protocol refuses a 207-byte reply"
    );
    assert_eq!(
        ArtPollReply::decode(short).map(|r| r.short_name),
        Ok("old node".to_owned()),
        "we read it"
    );
}

/// PEERS.md: "ArtDmx data is not cut to its Length field".
#[test]
fn peer_fault_artnet_protocol_does_not_cut_art_dmx_to_length() {
    let mut bytes = ArtDmx {
        sequence: 0,
        physical: 0,
        port_address: our_port(1),
        data: Cow::Borrowed(&[1, 2]),
    }
    .encode()
    .expect("encodes");
    bytes.extend_from_slice(&[0xde, 0xad]); // e.g. a padded or reused receive buffer
    match ArtCommand::from_buffer(&bytes) {
        Ok(ArtCommand::Output(output)) => assert_eq!(
            output.data.as_ref(),
            &vec![1, 2, 0xde, 0xad],
            "artnet_protocol keeps the bytes past Length"
        ),
        other => panic!("artnet_protocol failed: {other:?}"),
    }
    assert_eq!(
        &*ArtDmx::decode(&bytes).expect("decodes").data,
        &[1, 2],
        "we cut to Length"
    );
}

/// E1.31 §6.2.2 says a source name is NUL-terminated but tells receivers nothing about names
/// that are not. The `sacn` crate drops the whole packet (slots and all) over a 64-byte name
/// without a NUL, or over a name that is not UTF-8; we keep the data and read the name leniently.
#[test]
fn peer_difference_sacn_crate_drops_packets_over_their_name() {
    let slots = [1, 2, 3];
    let good = DataPacket {
        cid: CID,
        source_name: Cow::Borrowed("ok"),
        priority: 100,
        sync_address: 0,
        sequence: 1,
        options: Options::default(),
        universe: 1,
        start_code: 0,
        slots: Cow::Borrowed(&slots),
    }
    .encode()
    .expect("encodes");
    for (what, name) in [
        ("64 bytes, no NUL", [b'n'; 64].to_vec()),
        ("not UTF-8", crate::padded(&[b'o', 0xff, b'k'], 64)),
    ] {
        let mut bytes = good.clone();
        bytes[44..108].copy_from_slice(&name);
        assert!(
            AcnRootLayerProtocol::parse(&bytes).is_err(),
            "{what}: the sacn crate refuses the packet"
        );
        assert!(
            matches!(wire_sacn::decode(&bytes), Ok(wire_sacn::Packet::Data(ref d)) if *d.slots == slots),
            "{what}: we keep the slots"
        );
    }
}
