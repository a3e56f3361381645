//! Wireshark's dissectors read a capture of our output: zero malformed packets, and the
//! fields we meant (priority, sync address, sequence, universe, Art-Net port-address).
//!
//! Needs `tshark` and permission to capture on `lo` (CI runs as root; `./dev setup` installs it).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rockontrol_dmx::output::{OutputConfig, OutputThread};
use rockontrol_dmx::routes::{ArtNetRoute, OutputPlan, SacnRoute};
use rockontrol_engine::FrameSet;
use rockontrol_wire::artnet::PortAddress;

struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    /// Starts tshark on `lo` for `filter`, and waits until it is capturing.
    fn start(filter: &str, name: &str, probe_target: std::net::SocketAddr) -> Capture {
        let file = std::env::temp_dir().join(format!("rk-{name}-{}.pcap", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new("tshark")
            .args(["-f", filter, "-i", "lo", "-w"])
            .arg(&file)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run tshark ({e}): install it with `./dev setup`"));
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(
                Instant::now() < deadline,
                "tshark did not start capturing within 20 s"
            );
            match lines.next() {
                Some(Ok(line)) if line.contains("Capturing on") => break,
                Some(Ok(_)) => continue,
                _ => panic!("tshark exited before capturing (are we allowed to capture on lo?)"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        // "Capturing on" comes before dumpcap really captures: send probes to a port in the
        // filter until the capture file grows, so the test's first packet is not lost.
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        let size = |f: &std::path::Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let empty = size(&file);
        let deadline = Instant::now() + Duration::from_secs(20);
        while size(&file) <= empty {
            assert!(
                Instant::now() < deadline,
                "tshark captured none of our probe packets within 20 s"
            );
            let _ = probe.send_to(b"probe", probe_target);
            std::thread::sleep(Duration::from_millis(100));
        }
        Capture { child, file }
    }

    /// Stops the capture and returns tshark's reading of it with `args`.
    fn read(mut self, args: &[&str]) -> String {
        // Let the last packets reach the capture file, then stop tshark cleanly.
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["--enable-heuristic", "acn", "-o", "acn.dmx_enable:TRUE"])
            .args(args)
            .output()
            .expect("tshark reads the capture");
        assert!(
            out.status.success(),
            "tshark -r failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn wireshark_decodes_our_output_with_nothing_malformed() {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sACN sink");
    let sacn_port = sink.local_addr().expect("addr").port();
    // Art-Net on its own port so Wireshark's Art-Net dissector picks it up.
    let art_sink = UdpSocket::bind("127.0.0.1:6454").ok();
    let filter = format!("udp port {sacn_port} or udp port 6454");
    let capture = Capture::start(&filter, "out", sink.local_addr().expect("addr"));

    let plan = OutputPlan {
        sacn: [(1u16, 0usize), (2, 1)]
            .into_iter()
            .map(|(universe, frame_index)| SacnRoute {
                frame_index,
                universe,
                priority: 150,
                sync_address: 7000,
                preview: false,
                destinations: vec![format!("127.0.0.1:{sacn_port}").parse().expect("addr")],
            })
            .collect(),
        artnet: vec![ArtNetRoute {
            frame_index: 1,
            port_address: PortAddress::from_parts(0, 1, 2).expect("0:1:2"),
            destinations: vec!["127.0.0.1:6454".parse().expect("addr")],
            discovered: false,
        }],
        usbpro: vec![],
    };
    let config = OutputConfig {
        cid: [7; 16],
        source_name: "RocKontrol tshark test".into(),
        interface: Ipv4Addr::LOCALHOST,
        multicast_ttl: 1,
        idle_rate: None,
        artnet_broadcast: None,
        artnet_timecode: None,
        priority: None,
    };
    let (tx, rx) = sync_channel(16);
    let mut thread = OutputThread::start(config, plan, rx).expect("start output");
    let start = Instant::now();
    for tick in 0..10u64 {
        let mut data = vec![0u8; 1024];
        data[0] = 100 + tick as u8;
        data[512] = 200;
        tx.send(Arc::new(FrameSet {
            tick,
            time: tick as f64 / 44.0,
            rate: 44,
            deadline: start + Duration::from_millis(23 * (tick + 1)),
            universes: vec![1, 2],
            data,
        }))
        .expect("frame");
    }
    std::thread::sleep(Duration::from_millis(400));
    thread.stop();
    drop(art_sink);

    let capture_file = capture.file.clone();
    // sACN is found by the heuristic dissector on any port; `acn.dmx_enable` dissects the E1.31
    // layer (it would flag packets under 512 slots; ours always carry 512).
    let text = capture.read(&[
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "acn.dmx.universe",
        "-e",
        "acn.dmx.priority",
        "-e",
        "acn.dmx.reserved",
        "-e",
        "acn.dmx.seq_number",
        "-e",
        "acn.dmx.source_name",
        "-e",
        "artnet.header.opcode",
        "-e",
        "artnet.output.universe",
        "-e",
        "artnet.output.sequence",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
    ]);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let data: Vec<&Vec<&str>> = rows.iter().filter(|r| !r[0].is_empty()).collect();
    assert_eq!(
        data.len(),
        26,
        "20 data + 6 stream-terminated sACN packets, got:\n{text}"
    );
    for (i, r) in data.iter().take(20).enumerate() {
        let universe = if i % 2 == 0 { "1" } else { "2" };
        let seq = (i / 2).to_string();
        assert_eq!(
            (r[0], r[1], r[2], r[3], r[4]),
            (
                universe,
                "150",
                "7000",
                seq.as_str(),
                "RocKontrol tshark test"
            ),
            "sACN packet {i}: universe, priority, sync address, sequence, source name"
        );
    }
    let artdmx: Vec<&Vec<&str>> = rows.iter().filter(|r| r[5] == "0x5000").collect();
    assert_eq!(artdmx.len(), 10, "one ArtDmx per frame:\n{text}");
    assert!(
        artdmx.iter().all(|r| r[6] == "18"),
        "port-address 0:1:2 = 18:\n{text}"
    );
    assert_eq!(
        rows.iter().filter(|r| r[5] == "0x5200").count(),
        10,
        "one ArtSync per frame:\n{text}"
    );
    // Sync packets: Wireshark 4.0 shows them as plain UDP (PEERS.md), so count them by size.
    let sizes = Command::new("tshark")
        .arg("-r")
        .arg(&capture_file)
        .args([
            "-T",
            "fields",
            "-e",
            "udp.length",
            "-Y",
            &format!("udp.dstport=={sacn_port}"),
        ])
        .output()
        .expect("tshark");
    let syncs = String::from_utf8_lossy(&sizes.stdout)
        .lines()
        .filter(|l| *l == "57")
        .count();
    assert_eq!(syncs, 10, "ten 49-byte sync packets (UDP length 57)");

    let flagged = Command::new("tshark")
        .arg("-r")
        .arg(&capture_file)
        .args(["--enable-heuristic", "acn", "-o", "acn.dmx_enable:TRUE"])
        .args(["-Y", "_ws.malformed || _ws.expert.severity >= \"warning\""])
        .output()
        .expect("tshark");
    let flagged = String::from_utf8_lossy(&flagged.stdout);
    assert!(
        flagged.trim().is_empty(),
        "Wireshark flags packets:\n{flagged}"
    );
    let _ = std::fs::remove_file(capture_file);
}
