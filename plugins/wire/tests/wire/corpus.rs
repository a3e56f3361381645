//! The kept fuzz corpus: `tests/corpus/*.bin`, one datagram (or serial frame) a file.
//!
//! A name says what the file must decode to: `ok-<protocol>-<kind>-…` decodes as that kind,
//! `bad-<protocol>-<kind>-…` is refused by that kind's decoder with an error (and by nothing
//! panicking). `*-ola-*` files are real packets captured from OLA's `olad` (tshark, in the
//! interop namespace); the rest are written by [`write_corpus`] from our encoders, the `sacn`
//! and `artnet_protocol` crates, and mechanical damage to each of them. Every file also seeds
//! the mutation fuzzer below. A proptest failure worth keeping goes in as a new `bad-` file.
//!
//! Regenerate (keeps the `-ola-` captures):
//! `cargo test -p rockontrol-wire --test wire corpus::write_corpus -- --ignored`

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ::sacn::packet::{
    AcnRootLayerProtocol, DataPacketDmpLayer, DataPacketFramingLayer, E131RootLayer,
    E131RootLayerData,
};
use proptest::prelude::*;
use rockontrol_wire::artnet::{
    self, ArtDmx, ArtPacket, ArtPoll, ArtPollReply, ArtSync, ArtTimeCode, PortAddress,
};
use rockontrol_wire::sacn::{self, DataPacket, DiscoveryPacket, Options, Packet, SyncPacket};
use rockontrol_wire::timecode::{FrameRate, Timecode};
use rockontrol_wire::usbpro::{self, Frame};

use crate::fuzz::{decode_everything, mutate, mutation};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every corpus file: (name without `.bin`, bytes), sorted by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".bin")?.to_owned();
            let bytes = std::fs::read(&path).ok()?;
            Some((name, bytes))
        })
        .collect();
    files.sort();
    files
}

/// Decodes `bytes` as the kind a corpus name gives (`sacn-data`, `artnet-poll`, …): `Ok(())`
/// when it is that kind, `Err(why)` otherwise.
fn decode_as(kind: &str, bytes: &[u8]) -> Result<(), String> {
    let got = match kind {
        "sacn-data" | "sacn-sync" | "sacn-discovery" => match sacn::decode(bytes) {
            Ok(Packet::Data(_)) => "sacn-data",
            Ok(Packet::Sync(_)) => "sacn-sync",
            Ok(Packet::Discovery(_)) => "sacn-discovery",
            Err(e) => return Err(e.to_string()),
        },
        "artnet-dmx" | "artnet-sync" | "artnet-poll" | "artnet-pollreply" | "artnet-timecode" => {
            match artnet::decode(bytes) {
                Ok(ArtPacket::Dmx(_)) => "artnet-dmx",
                Ok(ArtPacket::Sync(_)) => "artnet-sync",
                Ok(ArtPacket::Poll(_)) => "artnet-poll",
                Ok(ArtPacket::PollReply(_)) => "artnet-pollreply",
                Ok(ArtPacket::TimeCode(_)) => "artnet-timecode",
                Err(e) => return Err(e.to_string()),
            }
        }
        "usbpro-frame" => match Frame::decode(bytes) {
            Ok((_, used)) if used == bytes.len() => "usbpro-frame",
            Ok((_, used)) => return Err(format!("frame ends at {used} of {}", bytes.len())),
            Err(e) => return Err(e.to_string()),
        },
        other => panic!("corpus name names no kind: {other}"),
    };
    if got == kind {
        Ok(())
    } else {
        Err(format!("decoded as {got}"))
    }
}

/// `ok-sacn-data-ola-u1` → (true, "sacn-data").
fn expectation(name: &str) -> (bool, String) {
    let (ok, rest) = if let Some(rest) = name.strip_prefix("ok-") {
        (true, rest)
    } else if let Some(rest) = name.strip_prefix("bad-") {
        (false, rest)
    } else {
        panic!("corpus file {name}.bin: names start with ok- or bad-");
    };
    let mut parts = rest.splitn(3, '-');
    let kind = format!(
        "{}-{}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    (ok, kind)
}

#[test]
fn every_corpus_file_decodes_as_its_name_says() {
    let files = corpus();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    assert!(
        files.iter().filter(|(n, _)| n.contains("-ola-")).count() >= 5,
        "the captures from olad are kept"
    );
    let mut wrong = Vec::new();
    for (name, bytes) in &files {
        decode_everything(bytes);
        let (ok, kind) = expectation(name);
        match (ok, decode_as(&kind, bytes)) {
            (true, Err(why)) => wrong.push(format!("{name}: refused: {why}")),
            (false, Ok(())) => wrong.push(format!("{name}: accepted")),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn olad_packets_carry_what_olad_was_told() {
    let files = corpus();
    let get = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("{name}.bin missing"))
    };
    // `ola_set_dmx -u 1 -d 0,1,2,3,255,128,7` with an E1.31 output port on universe 1.
    let bytes = get("ok-sacn-data-ola-u1-7slots");
    let Ok(Packet::Data(data)) = sacn::decode(&bytes) else {
        panic!("not sACN data")
    };
    assert_eq!(data.universe, 1);
    assert_eq!(&*data.slots, &[0, 1, 2, 3, 255, 128, 7]);
    assert_eq!(data.priority, 100);
    assert!(data.source_name.contains("OLA"), "{}", data.source_name);
    // `ola_set_dmx -u 2 -d 10,20,30,40,50` with an Art-Net output port on 0:0:2.
    let bytes = get("ok-artnet-dmx-ola-0-0-2");
    let Ok(ArtPacket::Dmx(dmx)) = artnet::decode(&bytes) else {
        panic!("not ArtDmx")
    };
    assert_eq!(dmx.port_address, PortAddress::new(2).expect("valid"));
    assert_eq!(&dmx.data[..5], &[10, 20, 30, 40, 50]);
}

proptest! {
    #[test]
    fn mutated_corpus_files_never_panic(index in any::<usize>(), mutation in mutation()) {
        let files = corpus();
        let (_, bytes) = &files[index % files.len()];
        decode_everything(&mutate(bytes.clone(), &mutation));
    }
}

/// Writes the generated part of the corpus (see the module docs).
#[test]
#[ignore = "writes tests/corpus; run by hand to regenerate it"]
fn write_corpus() {
    let dir = corpus_dir();
    for (name, _) in corpus() {
        if !name.contains("-ola-") {
            std::fs::remove_file(dir.join(format!("{name}.bin"))).expect("remove old file");
        }
    }
    let mut good: Vec<(String, Vec<u8>)> = Vec::new();
    let cid = *b"RocKontrolCorpus";
    let data = |universe: u16, slots: Vec<u8>, sync: u16, options: Options| DataPacket {
        cid,
        source_name: Cow::Borrowed("RocKontrol corpus"),
        priority: 100,
        sync_address: sync,
        sequence: 7,
        options,
        universe,
        start_code: 0,
        slots: Cow::Owned(slots),
    };
    let plain = Options::default();
    let cases = [
        (
            "full-512",
            data(1, (0..512).map(|i| i as u8).collect(), 0, plain),
        ),
        ("universe-63999", data(63999, vec![255; 24], 0, plain)),
        ("odd-3-slots", data(2, vec![1, 2, 3], 0, plain)),
        ("no-slots", data(3, Vec::new(), 0, plain)),
        ("synced-1000", data(4, vec![9; 512], 1000, plain)),
        (
            "preview-terminated",
            data(
                5,
                vec![0; 512],
                0,
                Options {
                    preview: true,
                    stream_terminated: true,
                    force_synchronization: false,
                },
            ),
        ),
    ];
    for (label, packet) in cases {
        good.push((
            format!("sacn-data-{label}"),
            packet.encode().expect("encode"),
        ));
    }
    let sync = SyncPacket {
        cid,
        sequence: 200,
        sync_address: 1000,
    };
    good.push(("sacn-sync-1000".into(), sync.encode().expect("encode")));
    for (label, universes) in [
        ("empty", Vec::new()),
        ("1-to-512", (1..=512).collect::<Vec<u16>>()),
    ] {
        let discovery = DiscoveryPacket {
            cid,
            source_name: Cow::Borrowed("RocKontrol corpus"),
            page: 0,
            last_page: 0,
            universes,
        };
        good.push((
            format!("sacn-discovery-{label}"),
            discovery.encode().expect("encode"),
        ));
    }
    let port = |v: u16| PortAddress::new(v).expect("port address");
    for (label, address, slots) in [
        (
            "full-512",
            0,
            (0..512).map(|i| (i * 7) as u8).collect::<Vec<u8>>(),
        ),
        ("odd-5-slots", 1, vec![1, 2, 3, 4, 5]),
        ("port-32767", 32767, vec![255; 2]),
    ] {
        let dmx = ArtDmx {
            sequence: 1,
            physical: 0,
            port_address: port(address),
            data: Cow::Owned(slots),
        };
        good.push((format!("artnet-dmx-{label}"), dmx.encode().expect("encode")));
    }
    good.push(("artnet-sync".into(), ArtSync.encode()));
    good.push(("artnet-poll-default".into(), ArtPoll::default().encode()));
    good.push((
        "artnet-pollreply-default".into(),
        ArtPollReply::default().encode().expect("encode"),
    ));
    for (label, rate) in [("25fps", FrameRate::Ebu25), ("2997df", FrameRate::Df2997)] {
        let tc = ArtTimeCode {
            stream_id: 0,
            timecode: Timecode::from_frames(90_000, rate),
        };
        good.push((
            format!("artnet-timecode-{label}"),
            tc.encode().expect("encode"),
        ));
    }
    // Bytes from the peer crates, as `peers.rs` compares them (the CID taken from a packet of
    // ours, so no `uuid` dependency).
    let ours = data(1, vec![1, 2, 3], 0, plain).encode().expect("encode");
    let their_cid = AcnRootLayerProtocol::parse(&ours)
        .expect("the sacn crate parses ours")
        .pdu
        .cid;
    let theirs = AcnRootLayerProtocol {
        pdu: E131RootLayer {
            cid: their_cid,
            data: E131RootLayerData::DataPacket(DataPacketFramingLayer {
                source_name: Cow::Borrowed("sacn crate"),
                priority: 100,
                synchronization_address: 0,
                sequence_number: 1,
                preview_data: false,
                stream_terminated: false,
                force_synchronization: false,
                universe: 1,
                data: DataPacketDmpLayer {
                    property_values: Cow::Owned(vec![0, 1, 2, 3]),
                },
            }),
        },
    };
    good.push((
        "sacn-data-sacn-crate".into(),
        theirs.pack_alloc().expect("the sacn crate packs"),
    ));
    let their_poll = artnet_protocol::ArtCommand::Poll(artnet_protocol::Poll::default())
        .write_to_buffer()
        .expect("artnet_protocol writes");
    good.push(("artnet-poll-artnet-protocol-crate".into(), their_poll));
    let mut usb = Vec::new();
    usbpro::encode_dmx(0, &[255; 512], &mut usb).expect("encode");
    good.push(("usbpro-frame-dmx-512".into(), usb));

    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(format!("{name}.bin")), bytes).expect("write corpus file");
    };
    for (name, bytes) in &good {
        write(&format!("ok-{name}"), bytes);
    }
    // Damage, from the generated packets and the captures alike.
    let mut sources = good.clone();
    for (name, bytes) in corpus() {
        if let Some(rest) = name.strip_prefix("ok-")
            && rest.contains("-ola-")
        {
            sources.push((rest.to_owned(), bytes));
        }
    }
    for (name, bytes) in &sources {
        let kind = expectation(&format!("ok-{name}")).1;
        let mut damaged: Vec<(&str, Vec<u8>)> = vec![
            ("cut-in-header", bytes[..bytes.len().min(10)].to_vec()),
            ("wrong-id", {
                let mut b = bytes.clone();
                b[if kind.starts_with("usbpro") { 0 } else { 5 }] ^= 0x20;
                b
            }),
        ];
        if kind.starts_with("sacn") {
            damaged.push(("one-byte-short", bytes[..bytes.len() - 1].to_vec()));
            damaged.push(("root-vector-4", {
                let mut b = bytes.clone();
                b[21] = 0x05;
                b
            }));
        }
        if kind == "artnet-dmx" || kind == "artnet-sync" || kind == "artnet-timecode" {
            damaged.push(("protver-13", {
                let mut b = bytes.clone();
                b[10] = 0;
                b[11] = 13;
                b
            }));
        }
        if kind == "artnet-dmx" {
            damaged.push(("length-past-end", bytes[..bytes.len() - 1].to_vec()));
        }
        if kind.starts_with("usbpro") {
            damaged.push(("no-end-byte", bytes[..bytes.len() - 1].to_vec()));
        }
        for (label, b) in damaged {
            write(&format!("bad-{name}-{label}"), &b);
        }
    }
}
