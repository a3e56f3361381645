//! Property tests: no decoder panics on any input, valid packets survive mutation without a
//! panic, and every encoder's output decodes back to what was encoded.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use rockontrol_wire::artnet::{
    self, ArtDmx, ArtPacket, ArtPoll, ArtPollReply, ArtSync, ArtTimeCode, PortAddress,
};
use rockontrol_wire::sacn::{self, DataPacket, DiscoveryPacket, Options, Packet, SyncPacket};
use rockontrol_wire::timecode::{FrameRate, Timecode};
use rockontrol_wire::usbpro::{self, Frame, FrameDecoder, ReceivedDmx, WidgetParameters};

/// Names of up to 15 printable characters: at most 60 bytes of UTF-8, never a NUL.
fn source_name() -> impl Strategy<Value = String> {
    "\\PC{0,15}"
}

fn data_packet() -> impl Strategy<Value = DataPacket<'static>> {
    (
        any::<[u8; 16]>(),
        source_name(),
        0u8..=200,
        0u16..=63999,
        any::<u8>(),
        any::<(bool, bool, bool)>(),
        1u16..=63999,
        any::<u8>(),
        vec(any::<u8>(), 0..=512),
    )
        .prop_map(
            |(
                cid,
                name,
                priority,
                sync_address,
                sequence,
                options,
                universe,
                start_code,
                slots,
            )| {
                DataPacket {
                    cid,
                    source_name: Cow::Owned(name),
                    priority,
                    sync_address,
                    sequence,
                    options: Options {
                        preview: options.0,
                        stream_terminated: options.1,
                        force_synchronization: options.2,
                    },
                    universe,
                    start_code,
                    slots: Cow::Owned(slots),
                }
            },
        )
}

fn sync_packet() -> impl Strategy<Value = SyncPacket> {
    (any::<[u8; 16]>(), any::<u8>(), 1u16..=63999).prop_map(|(cid, sequence, sync_address)| {
        SyncPacket {
            cid,
            sequence,
            sync_address,
        }
    })
}

fn discovery_packet() -> impl Strategy<Value = DiscoveryPacket<'static>> {
    (
        any::<[u8; 16]>(),
        source_name(),
        any::<u8>().prop_flat_map(|last| (0..=last, Just(last))),
        btree_set(any::<u16>(), 0..=512),
    )
        .prop_map(
            |(cid, name, (page, last_page), universes)| DiscoveryPacket {
                cid,
                source_name: Cow::Owned(name),
                page,
                last_page,
                universes: universes.into_iter().collect(),
            },
        )
}

fn port_address() -> impl Strategy<Value = PortAddress> {
    (0u16..=32767).prop_map(|value| PortAddress::new(value).unwrap_or_default())
}

fn art_dmx() -> impl Strategy<Value = ArtDmx<'static>> {
    (
        any::<u8>(),
        any::<u8>(),
        port_address(),
        vec(any::<u8>(), 1..=512),
    )
        .prop_map(|(sequence, physical, port_address, data)| ArtDmx {
            sequence,
            physical,
            port_address,
            data: Cow::Owned(data),
        })
}

fn art_poll() -> impl Strategy<Value = ArtPoll> {
    (
        any::<u8>(),
        any::<u8>(),
        port_address(),
        port_address(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(flags, diag_priority, target_top, target_bottom, esta_man, oem)| ArtPoll {
                flags,
                diag_priority,
                target_top,
                target_bottom,
                esta_man,
                oem,
            },
        )
}

fn art_poll_reply() -> impl Strategy<Value = ArtPollReply> {
    let identity = (
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
    );
    let names = ("[ -~]{0,17}", "[ -~]{0,63}", "[ -~]{0,63}");
    let ports = (
        any::<u16>(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<(u8, u8, u8, u8)>(),
    );
    let tail = (
        any::<[u8; 6]>(),
        any::<[u8; 4]>(),
        any::<(u8, u8, u8)>(),
        any::<[u8; 4]>(),
        any::<[u8; 6]>(),
        any::<(u16, u16)>(),
    );
    (identity, names, ports, tail).prop_map(
        |(
            (ip, port, version_info, net_switch, sub_switch, oem, ubea_version, status1, esta_man),
            (short_name, long_name, node_report),
            (num_ports, port_types, good_input, good_output_a, sw_in, sw_out, switches),
            (
                mac,
                bind_ip,
                (bind_index, status2, status3),
                good_output_b,
                uid,
                (user, refresh_rate),
            ),
        )| ArtPollReply {
            ip: Ipv4Addr::from(ip),
            port,
            version_info,
            net_switch,
            sub_switch,
            oem,
            ubea_version,
            status1,
            esta_man,
            short_name,
            long_name,
            node_report,
            num_ports,
            port_types,
            good_input,
            good_output_a,
            sw_in,
            sw_out,
            acn_priority: switches.0,
            sw_macro: switches.1,
            sw_remote: switches.2,
            style: switches.3,
            mac,
            bind_ip: Ipv4Addr::from(bind_ip),
            bind_index,
            status2,
            good_output_b,
            status3,
            default_responder_uid: uid,
            user,
            refresh_rate,
        },
    )
}

fn frame_rate() -> impl Strategy<Value = FrameRate> {
    prop_oneof![
        Just(FrameRate::Film24),
        Just(FrameRate::Ebu25),
        Just(FrameRate::Df2997),
        Just(FrameRate::Smpte30),
    ]
}

fn art_time_code() -> impl Strategy<Value = ArtTimeCode> {
    (any::<u8>(), frame_rate(), any::<u32>()).prop_map(|(stream_id, rate, frames)| ArtTimeCode {
        stream_id,
        timecode: Timecode::from_frames(frames, rate),
    })
}

/// Every decoder in the crate, run on the same bytes; none may panic.
pub fn decode_everything(bytes: &[u8]) {
    let _ = sacn::decode(bytes);
    let _ = artnet::decode(bytes);
    let _ = ArtDmx::decode(bytes);
    let _ = ArtSync::decode(bytes);
    let _ = ArtPoll::decode(bytes);
    let _ = ArtPollReply::decode(bytes);
    let _ = ArtTimeCode::decode(bytes);
    let _ = Frame::decode(bytes);
    let _ = WidgetParameters::decode(bytes);
    let _ = ReceivedDmx::decode(bytes);
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    while decoder.next_frame().is_some() {}
}

/// A valid packet of any kind, as bytes.
fn valid_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        data_packet().prop_map(|p| p.encode().unwrap_or_default()),
        sync_packet().prop_map(|p| p.encode().unwrap_or_default()),
        discovery_packet().prop_map(|p| p.encode().unwrap_or_default()),
        art_dmx().prop_map(|p| p.encode().unwrap_or_default()),
        Just(ArtSync.encode()),
        art_poll().prop_map(|p| p.encode()),
        art_poll_reply().prop_map(|p| p.encode().unwrap_or_default()),
        art_time_code().prop_map(|p| p.encode().unwrap_or_default()),
        (any::<u8>(), vec(any::<u8>(), 0..=600)).prop_map(|(label, data)| {
            let mut buf = Vec::new();
            let _ = Frame { label, data: &data }.encode_into(&mut buf);
            buf
        }),
    ]
}

/// Byte flips, a cut and some appended bytes, applied to a valid packet.
#[derive(Debug, Clone)]
pub struct Mutation {
    flips: Vec<(usize, u8)>,
    cut: Option<usize>,
    appended: Vec<u8>,
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    (
        vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
        vec(any::<u8>(), 0..4),
    )
        .prop_map(|(flips, cut, appended)| Mutation {
            flips,
            cut,
            appended,
        })
}

pub fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    if !bytes.is_empty() {
        let len = bytes.len();
        for &(index, value) in &mutation.flips {
            bytes[index % len] = value;
        }
    }
    if let Some(cut) = mutation.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes.extend_from_slice(&mutation.appended);
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..700)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_real_header_never_panic(
        header in prop_oneof![
            Just(b"Art-Net\0\x00\x50\x00\x0e".to_vec()),
            Just(b"Art-Net\0\x00\x21".to_vec()),
            Just(b"Art-Net\0\x00\x20\x00\x0e".to_vec()),
            Just(b"Art-Net\0\x00\x97\x00\x0e".to_vec()),
            Just(b"\x00\x10\x00\x00ASC-E1.17\0\0\0".to_vec()),
        ],
        tail in vec(any::<u8>(), 0..700),
    ) {
        let mut bytes = header;
        bytes.extend_from_slice(&tail);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_valid_packets_never_panic(bytes in valid_bytes(), mutation in mutation()) {
        decode_everything(&mutate(bytes, &mutation));
    }

    #[test]
    fn sacn_data_round_trips(packet in data_packet()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len(), packet.encoded_len());
        prop_assert_eq!(sacn::decode(&bytes), Ok(Packet::Data(packet.clone())));
        // A one-byte-short copy is incomplete, never invalid.
        prop_assert!(sacn::decode(&bytes[..bytes.len() - 1]).is_err_and(|e| e.is_incomplete()));
    }

    #[test]
    fn sacn_sync_round_trips(packet in sync_packet()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sacn::decode(&bytes), Ok(Packet::Sync(packet)));
    }

    #[test]
    fn sacn_discovery_round_trips(packet in discovery_packet()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sacn::decode(&bytes), Ok(Packet::Discovery(packet.clone())));
    }

    #[test]
    fn discovery_pages_cover_the_list(universes in vec(any::<u16>(), 0..2000)) {
        let pages = DiscoveryPacket::paginate([1; 16], "x", &universes);
        let expected: BTreeSet<u16> = universes.iter().copied().collect();
        let mut listed = Vec::new();
        for (index, page) in pages.iter().enumerate() {
            prop_assert_eq!(usize::from(page.page), index);
            prop_assert_eq!(usize::from(page.last_page), pages.len() - 1);
            prop_assert!(page.universes.len() <= 512);
            prop_assert!(page.encode().is_ok());
            listed.extend_from_slice(&page.universes);
        }
        prop_assert_eq!(listed, expected.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn art_dmx_round_trips(packet in art_dmx()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len() % 2, 0, "even length on the wire");
        let decoded = ArtDmx::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.sequence, packet.sequence);
        prop_assert_eq!(decoded.physical, packet.physical);
        prop_assert_eq!(decoded.port_address, packet.port_address);
        let slots = packet.data.len();
        prop_assert_eq!(&decoded.data[..slots], &packet.data[..]);
        prop_assert!(decoded.data[slots..].iter().all(|&b| b == 0));
        prop_assert_eq!(decoded.data.len(), slots + slots % 2);
    }

    #[test]
    fn art_poll_round_trips(packet in art_poll()) {
        prop_assert_eq!(ArtPoll::decode(&packet.encode()), Ok(packet));
    }

    #[test]
    fn art_poll_reply_round_trips(packet in art_poll_reply()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len(), 239);
        let decoded = artnet::decode(&bytes);
        prop_assert!(matches!(decoded, Ok(ArtPacket::PollReply(ref r)) if **r == packet));
    }

    #[test]
    fn art_time_code_round_trips(packet in art_time_code()) {
        let bytes = packet.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ArtTimeCode::decode(&bytes), Ok(packet));
    }

    #[test]
    fn usbpro_frames_round_trip(label in any::<u8>(), data in vec(any::<u8>(), 0..=600)) {
        let mut buf = Vec::new();
        Frame { label, data: &data }.encode_into(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Frame::decode(&buf), Ok((Frame { label, data: &data }, data.len() + 5)));
    }

    #[test]
    fn usbpro_dmx_round_trips(start_code in any::<u8>(), slots in vec(any::<u8>(), 0..=512)) {
        let mut buf = Vec::new();
        usbpro::encode_dmx(start_code, &slots, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (frame, _) = Frame::decode(&buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(frame.label, usbpro::label::OUTPUT_ONLY_SEND_DMX);
        prop_assert_eq!(frame.data[0], start_code);
        prop_assert_eq!(&frame.data[1..=slots.len()], &slots[..]);
        prop_assert_eq!(frame.data.len(), 1 + slots.len().max(24));
    }

    #[test]
    fn frame_decoder_splits_any_way(
        frames in vec((any::<u8>(), vec(any::<u8>(), 0..64)), 0..8),
        noise in vec(vec(any::<u8>().prop_filter("not a start byte", |&b| b != 0x7e), 0..8), 8),
        chunk in 1usize..40,
    ) {
        let mut stream = Vec::new();
        let mut buf = Vec::new();
        for (index, (label, data)) in frames.iter().enumerate() {
            stream.extend_from_slice(&noise[index]);
            Frame { label: *label, data }.encode_into(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            stream.extend_from_slice(&buf);
        }
        let mut decoder = FrameDecoder::new();
        let mut found = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame() {
                found.push((frame.label, frame.data.to_vec()));
            }
            prop_assert!(decoder.buffered() <= 605, "at most one partial frame is held");
        }
        prop_assert_eq!(found, frames);
    }

    #[test]
    fn timecode_frames_round_trip(rate in frame_rate(), frames in any::<u32>()) {
        let label = Timecode::from_frames(frames, rate);
        prop_assert_eq!(label.validate(), Ok(()));
        prop_assert_eq!(label.to_frames(), frames % rate.frames_per_day());
    }
}
