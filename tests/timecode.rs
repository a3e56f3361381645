//! Timecode end to end (issue 12): timecode cues and beat follows at exact ticks in `render`;
//! ArtTimeCode, MTC and LTC out of a live run, each read back by something that is not our
//! encoder (Wireshark's dissector and the spec's byte layout, an MTC byte parser, the `ltc`
//! crate's and libltc's LTC decoders); the show clock chasing OLA's `ola_timecode` and an LTC
//! WAV that libltc wrote.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_wire::timecode::{FrameRate, Timecode};
use support::node::{BIN, temp_dir};
use support::skip;

/// Two dimmers on universe 1. `main` steps 20 / 40 / 60 % on dimmer 1 (51, 102, 153), `beat`
/// the same on dimmer 2; every cue snaps (no fade).
fn show(timecode: &str) -> String {
    format!(
        r#"(name: "timecode", universes: [(id: 1)],
    profiles: [(manufacturer: "T", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1", channels: ["D"])])],
    fixtures: [(id: 1, name: "A", profile: "T/Dim", mode: "1", universe: 1, address: 1),
               (id: 2, name: "B", profile: "T/Dim", mode: "1", universe: 1, address: 2)],
    cue_lists: [
        (name: "main", cues: [(number: 1, values: {{Fixture(1): {{Intensity: 0.2}}}}),
                              (number: 2, values: {{Fixture(1): {{Intensity: 0.4}}}}),
                              (number: 3, values: {{Fixture(1): {{Intensity: 0.6}}}})]),
        (name: "beat", cues: [(number: 1, values: {{Fixture(2): {{Intensity: 0.2}}}}),
                              (number: 2, values: {{Fixture(2): {{Intensity: 0.4}}}}),
                              (number: 3, values: {{Fixture(2): {{Intensity: 0.6}}}})]),
    ],
    playbacks: [(name: "main", cue_list: "main"), (name: "beat", cue_list: "beat")],
    timecode: {timecode},
)"#
    )
}

fn write_show(dir: &Path, timecode: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("temp dir");
    let path = dir.join("show.ron");
    std::fs::write(&path, show(timecode)).expect("write show");
    path
}

/// Slots 1 and 2 of every tick of a `render` (CSV), and its standard error.
fn render(show: &Path, until: &str, extra: &[&str]) -> (Vec<(u8, u8)>, String) {
    let out = Command::new(BIN)
        .arg("render")
        .arg(show)
        .args(["--until", until])
        .args(extra)
        .output()
        .expect("run rockontrol render");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "render failed: {err}");
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|row| {
            let cells: Vec<u8> = row
                .split(',')
                .skip(3)
                .take(2)
                .map(|v| v.parse().expect("a byte"))
                .collect();
            (cells[0], cells[1])
        })
        .collect();
    (rows, err)
}

/// The ticks at which slot `slot` (0 or 1) changes, with the new value.
fn changes(rows: &[(u8, u8)], slot: usize) -> Vec<(usize, u8)> {
    let get = |r: &(u8, u8)| if slot == 0 { r.0 } else { r.1 };
    let mut out = Vec::new();
    for k in 0..rows.len() {
        if k == 0 && get(&rows[0]) != 0 || k > 0 && get(&rows[k]) != get(&rows[k - 1]) {
            out.push((k, get(&rows[k])));
        }
    }
    out
}

#[test]
fn render_fires_timecode_cues_at_their_exact_ticks() {
    let dir = temp_dir("tc-render");
    let show = write_show(
        &dir,
        r#"(cues: [
            (at: "01:00:00:00", action: "goto main 1"),
            (at: "01:00:02:10", action: "goto main 3"),
            (at: "01:00:01:13", action: "goto main 2"),
        ])"#,
    );
    let (rows, err) = render(&show, "3s", &["--timecode-from", "01:00:00:00"]);
    assert_eq!(rows.len(), 133, "ticks 0..=132 at 44 Hz");
    // 01:00:01:13 is 1.52 s after 01:00:00:00 at 25 fps: 66.88 ticks, so tick 67.
    // 01:00:02:10 is 2.4 s: 105.6 ticks, so tick 106.
    assert_eq!(
        changes(&rows, 0),
        vec![(0, 51), (67, 102), (106, 153)],
        "each cue at the first tick at or after its label; {err}"
    );
    // The same show rendered from a later start label: cues before it never fire.
    let (rows, _) = render(&show, "1s", &["--timecode-from", "01:00:02:00"]);
    assert_eq!(
        changes(&rows, 0),
        vec![(18, 153)],
        "from 01:00:02:00, 01:00:02:10 is 0.4 s away: tick 17.6 → 18"
    );
}

#[test]
fn render_counts_drop_frame_labels_exactly() {
    let dir = temp_dir("tc-render-df");
    let show = write_show(
        &dir,
        r#"(rate: Df2997, cues: [(at: "01:01:00;02", action: "goto main 2")])"#,
    );
    // From 01:00:59;00: 30 frames to 01:00:59;29, and the next label is 01:01:00;02 (;00 and
    // ;01 are dropped), so the cue is 30 frames of 1001/30000 s away: 1.001 s = 44.044 ticks.
    let (rows, err) = render(&show, "2s", &["--timecode-from", "01:00:59;00"]);
    assert_eq!(changes(&rows, 0), vec![(45, 102)], "tick 45; {err}");
    // A dropped label is refused, naming it.
    let bad = write_show(
        &temp_dir("tc-render-df-bad"),
        r#"(rate: Df2997, cues: [(at: "01:01:00;00", action: "goto main 2")])"#,
    );
    let out = Command::new(BIN)
        .args(["render", bad.to_str().expect("utf8"), "--until", "1s"])
        .output()
        .expect("render");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a dropped label is an error");
    assert!(
        err.contains("timecode.cues[0].at") && err.contains("01:01:00;00"),
        "names the entry and the label: {err}"
    );
}

#[test]
fn render_steps_a_chase_on_beats() {
    let dir = temp_dir("tc-render-bpm");
    let show = write_show(
        &dir,
        r#"(tempo: (bpm: 120.0, start: 0.5, follow: [(playback: "beat", every: 1)]))"#,
    );
    let (rows, err) = render(&show, "1.6s", &[]);
    // Beats at 0.5, 1.0 and 1.5 s: ticks 22, 44 and 66.
    assert_eq!(
        changes(&rows, 1),
        vec![(22, 51), (44, 102), (66, 153)],
        "one GO per beat; {err}"
    );
    let dir = temp_dir("tc-render-bpm2");
    let show = write_show(
        &dir,
        r#"(tempo: (bpm: 128.0, follow: [(playback: "beat", every: 2)]))"#,
    );
    let (rows, _) = render(&show, "2s", &[]);
    // Every second beat at 128 BPM: 0, 0.9375 s (41.25 → 42) and 1.875 s (82.5 → 83).
    assert_eq!(changes(&rows, 1), vec![(0, 51), (42, 102), (83, 153)]);
}

/// Issue 12: an effect whose speed is in beats of the show's tempo, started and stopped by
/// timecode cues, in `render`: exact levels at exact ticks.
#[test]
fn render_runs_an_effect_at_the_tempo_from_timecode_cues() {
    let dir = temp_dir("tc-render-fx");
    std::fs::create_dir_all(&dir).expect("dir");
    // A square over both dimmers, half a cycle apart, one cycle every half beat at 60 BPM
    // (0.5 s; at the 120 BPM used without a tempo it would be 0.25 s).
    let text = show(
        r#"(tempo: (bpm: 60.0), cues: [
            (at: "00:00:00:00", action: "effect pulse on"),
            (at: "00:00:01:00", action: "effect pulse off"),
        ])"#,
    )
    .replace(
        "    timecode:",
        r#"    effects: [(name: "pulse", fixtures: [1, 2], waveform: Square, speed: Beats(0.5), spread: 0.5)],
    timecode:"#,
    );
    let path = dir.join("show.ron");
    std::fs::write(&path, text).expect("show");
    let (rows, err) = render(&path, "1.5s", &[]);
    // 0.25 s is tick 11 exactly, 0.5 s tick 22, 0.75 s tick 33, 1 s tick 44 (the off cue).
    assert_eq!(
        changes(&rows, 0),
        vec![(0, 255), (11, 0), (22, 255), (33, 0)],
        "dimmer 1: top for the first half of each 0.5 s cycle, off at 1 s; {err}"
    );
    assert_eq!(
        changes(&rows, 1),
        vec![(11, 255), (22, 0), (33, 255), (44, 0)],
        "dimmer 2 half a cycle behind; off at tick 44"
    );
}

/// A `rockontrol run` process with its standard output collected; killed when dropped.
struct Run {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Run {
    fn start(mut cmd: Command) -> Run {
        let mut child = cmd
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rockontrol run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Run { child, lines }
    }

    fn live(show: &Path, args: &[&str], dir: &Path) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg(show)
            .arg("--headless")
            .args(args)
            .env("ROCKONTROL_STATE_DIR", dir.join("state"));
        Run::start(cmd)
    }

    /// Waits (bounded) for the process to end by itself.
    fn wait(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "run exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("run did not stop within {timeout:?}");
    }

    /// The latest status-line timecode (`TC hh:mm:ss:ff ...`) and the line.
    fn latest_timecode(&self) -> Option<(String, String)> {
        let lines = self.lines.lock().ok()?;
        lines.iter().rev().find_map(|l| {
            let at = l.find("| TC ")?;
            Some((l[at + 5..at + 16].to_string(), l.clone()))
        })
    }

    fn output(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A little-endian pcap (LINKTYPE_RAW: IPv4 packets) of UDP payloads `from` → `to`, so
/// tshark can dissect what a socket received.
fn pcap(packets: &[Vec<u8>], from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes()); // magic: microsecond timestamps
    out.extend(2u16.to_le_bytes()); // version 2.4
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes()); // GMT
    out.extend(0u32.to_le_bytes()); // accuracy
    out.extend(65_535u32.to_le_bytes()); // snaplen
    out.extend(101u32.to_le_bytes()); // LINKTYPE_RAW
    let ip = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => [127, 0, 0, 1],
    };
    for (i, payload) in packets.iter().enumerate() {
        let len = 28 + payload.len();
        out.extend((i as u32).to_le_bytes()); // seconds
        out.extend(0u32.to_le_bytes());
        out.extend((len as u32).to_le_bytes());
        out.extend((len as u32).to_le_bytes());
        let mut header = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        header.extend(ip(from));
        header.extend(ip(to));
        let sum = header
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend(&header);
        out.extend(from.port().to_be_bytes());
        out.extend(to.port().to_be_bytes());
        out.extend(((8 + payload.len()) as u16).to_be_bytes());
        out.extend(0u16.to_be_bytes()); // no UDP checksum
        out.extend(payload);
    }
    out
}

#[test]
fn art_timecode_switched_on_in_the_show_is_dissected_by_wireshark() {
    if !Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip::unavailable(
            "art_timecode_switched_on_in_the_show_is_dissected_by_wireshark",
            "tshark is not installed",
        );
        return;
    }
    let dir = temp_dir("tc-artnet");
    std::fs::create_dir_all(&dir).expect("dir");
    // The node under test sends from 127.77.9.1 to a listener at 127.77.9.2:6454 (addresses no
    // other test uses).
    let node = UdpSocket::bind("127.77.9.2:6454").expect("bind the Art-Net listener");
    node.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let path = dir.join("show.ron");
    let text = show(r#"(start: "01:00:00:00", out: [ArtNet])"#).replace(
        "universes: [(id: 1)]",
        r#"universes: [(id: 1, outputs: [ArtNet(port_address: 0, destination: Unicast(["127.77.9.2"]))])]"#,
    );
    std::fs::write(&path, text).expect("show");
    let _run = Run::live(
        &path,
        &["--duration", "20s", "--dmx-interface", "127.77.9.1"],
        &dir,
    );
    let mut packets = Vec::new();
    let mut from = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    while packets.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "40 ArtTimeCode packets within 20 s; got {}",
            packets.len()
        );
        let Ok((n, sender)) = node.recv_from(&mut buf) else {
            continue;
        };
        // OpCode 0x9700 (little-endian at bytes 8-9) is ArtTimeCode.
        if n >= 10 && buf[..8] == *b"Art-Net\0" && buf[8..10] == [0x00, 0x97] {
            packets.push(buf[..n].to_vec());
            from = Some(sender);
        }
    }
    let from = from.expect("a sender");
    // By the spec's layout (not our decoder): frames 14, seconds 15, minutes 16, hours 17, type 18.
    let labels: Vec<(u8, u8, u8, u8, u8)> = packets
        .iter()
        .map(|p| (p[17], p[16], p[15], p[14], p[18]))
        .collect();
    assert!(
        labels.iter().all(|l| l.4 == 1),
        "type 1 (EBU 25 fps): {labels:?}"
    );
    assert_eq!(
        (labels[0].0, labels[0].1),
        (1, 0),
        "starts at 01:00:…: {labels:?}"
    );
    let frames: Vec<u32> = labels
        .iter()
        .map(|l| {
            ((u32::from(l.0) * 60 + u32::from(l.1)) * 60 + u32::from(l.2)) * 25 + u32::from(l.3)
        })
        .collect();
    assert!(
        frames.windows(2).all(|w| w[1] == w[0] + 1),
        "one packet per frame, every frame once (44 Hz ticks, 25 fps): {labels:?}"
    );
    let file = dir.join("timecode.pcap");
    std::fs::write(
        &file,
        pcap(&packets, from, "127.77.9.2:6454".parse().expect("addr")),
    )
    .expect("pcap");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-T",
            "fields",
            "-e",
            "artnet.header.opcode",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows.len(),
        packets.len(),
        "tshark read every packet: {text}"
    );
    for row in rows {
        let cells: Vec<&str> = row.split('\t').collect();
        assert_eq!(cells[0], "0x9700", "dissected as ArtTimeCode: {row:?}");
        // Malformed is a field of its own; expert infos of Warn (0x00600000) or worse would say
        // the dissector found something wrong (Chat and Note are remarks).
        let malformed = cells.get(1).is_some_and(|c| !c.is_empty());
        let severity = cells
            .get(2)
            .and_then(|c| c.split(',').filter_map(|v| v.parse::<u32>().ok()).max())
            .unwrap_or(0);
        assert!(
            !malformed && severity < 0x0060_0000,
            "nothing malformed, no warning or error: {row:?}"
        );
    }
}

#[test]
fn mtc_out_is_quarter_frames_of_the_show_clock() {
    let dir = temp_dir("tc-mtc");
    let show = write_show(&dir, r#"(rate: Smpte30, start: "10:00:00:00")"#);
    let file = dir.join("mtc.bin");
    let _ = std::fs::remove_file(&file);
    let mut run = Run::live(
        &show,
        &[
            "--duration",
            "3s",
            "--timecode-out",
            &format!("mtc:{}", file.display()),
        ],
        &dir,
    );
    run.wait(Duration::from_secs(30));
    let bytes = std::fs::read(&file).expect("MTC bytes");
    // Parsed here by the MIDI spec, not by our decoder: a full frame first…
    assert_eq!(
        &bytes[..5],
        &[0xF0, 0x7F, 0x7F, 0x01, 0x01],
        "a full frame first: {:02x?}",
        &bytes[..10]
    );
    assert_eq!(bytes[5] >> 5, 3, "rate 3 = 30 fps");
    assert_eq!(bytes[5] & 0x1F, 10, "hour 10");
    assert_eq!(bytes[9], 0xF7);
    // …then quarter frames F1 0nnn dddd, pieces 0..7 in order, each group a label two frames on.
    let quarters: Vec<u8> = bytes[10..]
        .chunks(2)
        .map(|c| {
            assert_eq!(
                c[0], 0xF1,
                "only quarter frames after the locate: {bytes:02x?}"
            );
            c[1]
        })
        .collect();
    assert!(
        quarters.len() >= 2 * 4 * 30,
        "2 s of 120 quarter frames a second: {}",
        quarters.len()
    );
    assert_eq!(quarters[0] >> 4, 0, "groups start at piece 0");
    let mut labels = Vec::new();
    for group in quarters.chunks_exact(8) {
        for (i, q) in group.iter().enumerate() {
            assert_eq!(usize::from(q >> 4), i, "pieces in order: {group:02x?}");
        }
        let n = |i: usize| group[i] & 0x0F;
        let frames = n(0) | (n(1) << 4);
        let seconds = n(2) | (n(3) << 4);
        let minutes = n(4) | (n(5) << 4);
        let hours = n(6) | ((n(7) & 1) << 4);
        assert_eq!(n(7) >> 1, 3, "rate 3 in every group");
        labels.push(
            Timecode::new(hours, minutes, seconds, frames, FrameRate::Smpte30)
                .expect("valid")
                .to_frames(),
        );
    }
    assert!(
        labels.windows(2).all(|w| w[1] == w[0] + 2),
        "each group of eight carries the label two frames after the last: {labels:?}"
    );
    let start = Timecode::new(10, 0, 0, 0, FrameRate::Smpte30)
        .expect("valid")
        .to_frames();
    assert!(
        labels[0] >= start && labels[0] < start + 30,
        "starts near 10:00:00:00: {labels:?}"
    );
}

/// Reads a 16-bit mono PCM WAV: (sample rate, samples).
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).expect("WAV");
    assert_eq!(&bytes[..4], b"RIFF", "a RIFF file");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut at = 12;
    let mut rate = 0;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "PCM");
            assert_eq!(u16::from_le_bytes([body[2], body[3]]), 1, "mono");
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            assert_eq!(u16::from_le_bytes([body[14], body[15]]), 16, "16-bit");
        }
        if id == b"data" {
            return (
                rate,
                body.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

#[test]
fn ltc_out_wav_is_read_back_by_an_independent_decoder() {
    let dir = temp_dir("tc-ltc-out");
    let show = write_show(&dir, r#"(start: "02:00:00:00")"#);
    let wav = dir.join("ltc.wav");
    let _ = std::fs::remove_file(&wav);
    let mut run = Run::live(
        &show,
        &[
            "--duration",
            "3s",
            "--timecode-out",
            &format!("ltc:{}", wav.display()),
        ],
        &dir,
    );
    run.wait(Duration::from_secs(30));
    let (rate, samples) = read_wav(&wav);
    assert_eq!(rate, 48_000);
    assert!(
        samples.len() > 48_000 * 2,
        "over 2 s of audio: {} samples",
        samples.len()
    );
    // The `ltc` crate (Danny Wensley's decoder, not our code) reads the labels.
    let mut decoder = ltc::LTCDecoder::with_capacity(48_000.0 / 25.0, 512);
    let floats: Vec<f32> = samples.iter().map(|s| f32::from(*s) / 32_768.0).collect();
    let mut labels = Vec::new();
    for chunk in floats.chunks(480) {
        if decoder.write_samples(chunk) {
            for f in &mut decoder {
                labels.push(
                    Timecode::new(f.hour, f.minute, f.second, f.frame, FrameRate::Ebu25)
                        .expect("valid label")
                        .to_frames(),
                );
            }
        }
    }
    assert!(
        labels.len() > 45,
        "about 25 labels a second: {}",
        labels.len()
    );
    let start = Timecode::new(2, 0, 0, 0, FrameRate::Ebu25)
        .expect("valid")
        .to_frames();
    assert!(
        labels[0] >= start && labels[0] < start + 50,
        "starts near 02:00:00:00: {labels:?}"
    );
    assert!(
        labels.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive labels, none skipped or repeated: {labels:?}"
    );
}

/// Builds `tests/data/libltc_tool.c` against libltc (an independent LTC encoder and decoder);
/// `None` when libltc or a C compiler is missing.
fn libltc_tool(test: &str) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libltc_tool.c");
    let tool = temp_dir(&format!("tc-libltc-{test}")).join("libltc_tool");
    std::fs::create_dir_all(tool.parent()?).ok()?;
    let built = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&tool)
        .arg(&source)
        .arg("-lltc")
        .output()
        .ok()?;
    built.status.success().then_some(tool)
}

fn wav_header(rate: u32, bits: u16, data_len: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(b"RIFF");
    h.extend(((36 + data_len) as u32).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(1u16.to_le_bytes()); // PCM
    h.extend(1u16.to_le_bytes()); // mono
    h.extend(rate.to_le_bytes());
    h.extend((rate * u32::from(bits / 8)).to_le_bytes());
    h.extend((bits / 8).to_le_bytes());
    h.extend(bits.to_le_bytes());
    h.extend(b"data");
    h.extend((data_len as u32).to_le_bytes());
    h
}

#[test]
fn libltc_reads_our_ltc_wav() {
    let Some(tool) = libltc_tool("dump") else {
        skip::unavailable(
            "libltc_reads_our_ltc_wav",
            "libltc (libltc-dev) or cc is missing",
        );
        return;
    };
    let dir = temp_dir("tc-ltc-libltc");
    let show = write_show(&dir, r#"(start: "05:59:59:00")"#);
    let wav = dir.join("ltc.wav");
    let _ = std::fs::remove_file(&wav);
    let mut run = Run::live(
        &show,
        &[
            "--duration",
            "3s",
            "--timecode-out",
            &format!("ltc:{}", wav.display()),
        ],
        &dir,
    );
    run.wait(Duration::from_secs(30));
    let (_, samples) = read_wav(&wav);
    let raw = dir.join("ltc.raw");
    std::fs::write(
        &raw,
        samples
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("raw");
    let out = Command::new(&tool)
        .arg("dump")
        .arg(&raw)
        .output()
        .expect("libltc dump");
    let text = String::from_utf8_lossy(&out.stdout);
    let labels: Vec<u32> = text
        .lines()
        .map(|l| {
            let f: Vec<u8> = l.split(':').map(|v| v.parse().expect("number")).collect();
            Timecode::new(f[0], f[1], f[2], f[3], FrameRate::Ebu25)
                .expect("valid")
                .to_frames()
        })
        .collect();
    assert!(
        labels.len() > 45,
        "libltc read about 25 labels a second: {text}"
    );
    assert!(
        labels.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive, across the hour (05:59:59:24 → 06:00:00:00): {text}"
    );
    assert!(text.contains("06:00:00:00"), "crosses into hour 6: {text}");
}

/// Status lines of `run` that mention the timecode, for failure messages and checks.
fn wait_for_timecode(run: &Run, timeout: Duration, ok: impl Fn(&str, &str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((label, line)) = run.latest_timecode()
            && ok(&label, &line)
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "timecode not as expected within {timeout:?}:\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_show_clock_chases_an_ltc_wav_that_libltc_wrote() {
    let Some(tool) = libltc_tool("gen") else {
        skip::unavailable(
            "the_show_clock_chases_an_ltc_wav_that_libltc_wrote",
            "libltc (libltc-dev) or cc is missing",
        );
        return;
    };
    let dir = temp_dir("tc-ltc-chase");
    let raw = dir.join("gen.raw");
    std::fs::create_dir_all(&dir).expect("dir");
    let made = Command::new(&tool)
        .arg("gen")
        .arg(&raw)
        .args(["3", "0", "0", "0", "4"])
        .status()
        .expect("libltc gen");
    assert!(made.success());
    let samples = std::fs::read(&raw).expect("samples");
    let wav = dir.join("libltc.wav");
    let mut bytes = wav_header(48_000, 8, samples.len());
    bytes.extend(&samples);
    std::fs::write(&wav, bytes).expect("wav");
    let show = write_show(&dir, "(freewheel: 2.0)");
    let run = Run::live(
        &show,
        &[
            "--duration",
            "12s",
            "--timecode-chase",
            &format!("ltc:{}", wav.display()),
        ],
        &dir,
    );
    // The file plays in real time from 03:00:00:00 for 4 s: locked on 03:00:0x.
    let line = wait_for_timecode(&run, Duration::from_secs(8), |label, line| {
        label.starts_with("03:00:0") && line.contains("chasing ltc: locked")
    });
    eprintln!("locked: {line}");
    // It ends: freewheel for 2 s (the show's `freewheel`), then lost; the clock keeps running.
    wait_for_timecode(&run, Duration::from_secs(8), |_, line| {
        line.contains("chasing ltc: lost")
    });
    let output = run.output();
    assert!(
        output.contains("chasing ltc: freewheel"),
        "freewheel came before lost:\n{output}"
    );
}

#[test]
fn the_show_clock_chases_ola_timecode() {
    if !support::node::is_root() || !support::ola::installed() {
        skip::unavailable(
            "the_show_clock_chases_ola_timecode",
            "needs root and OLA (olad, ola_timecode)",
        );
        return;
    }
    let ola = support::ola::Ola::start("tc", &["2-1-O-0 = 1"]);
    let dir = temp_dir("tc-ola-chase");
    let show = write_show(&dir, "()");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ola.namespace, BIN, "run"])
        .arg(&show)
        .args([
            "--headless",
            "--duration",
            "25s",
            "--timecode-chase",
            "artnet",
        ])
        .args(["--dmx-interface", support::ola::NODE_IP])
        .env("ROCKONTROL_STATE_DIR", dir.join("state"));
    let run = Run::start(cmd);
    std::thread::sleep(Duration::from_secs(1));
    // ola_timecode sends one ArtTimeCode per call: run it as a 25 fps source would, the label
    // following real time from 01:00:10:00.
    let send = |label: &str| {
        let status = ola
            .command("ola_timecode")
            .args(["-f", "EBU", label])
            .status()
            .expect("ola_timecode");
        assert!(status.success(), "ola_timecode {label}: {}", ola.log());
    };
    let source = |from: u32, for_how_long: Duration| {
        let start = Instant::now();
        while start.elapsed() < for_how_long {
            let frames = from + (start.elapsed().as_nanos() / 40_000_000) as u32;
            send(&Timecode::from_frames(frames, FrameRate::Ebu25).to_string());
        }
    };
    let from = Timecode::new(1, 0, 10, 0, FrameRate::Ebu25)
        .expect("valid")
        .to_frames();
    source(from, Duration::from_secs(4));
    let line = wait_for_timecode(&run, Duration::from_secs(3), |label, line| {
        label.starts_with("01:00:1") && line.contains("chasing artnet: locked")
    });
    eprintln!("locked: {line}");
    // A jump: located at 02:00:00:00, the show clock steps there.
    let jump = Timecode::new(2, 0, 0, 0, FrameRate::Ebu25)
        .expect("valid")
        .to_frames();
    source(jump, Duration::from_secs(3));
    wait_for_timecode(&run, Duration::from_secs(3), |label, _| {
        label.starts_with("02:00:0")
    });
    // Silence: freewheel.
    wait_for_timecode(&run, Duration::from_secs(4), |_, line| {
        line.contains("chasing artnet: freewheel")
    });
}

/// A master whose show has a timecode section and a tempo, and one receiver: the receiver's
/// heartbeat (read back through `GET /api/nodes/{id}/status`) carries its own label and beat,
/// computed from its synchronised clock and the replicated tempo, and the master's label from the
/// sync message.
#[test]
fn a_receiver_reports_the_masters_timecode_and_beat() {
    use support::node::{KEY, Node, free_port, master_addr, node_status, wait_state};
    let dir = temp_dir("tc-nodes");
    let port = free_port();
    let show = write_show(&dir, r#"(start: "10:00:00:00", tempo: (bpm: 120.0))"#);
    let master_cfg = dir.join("master.json");
    std::fs::write(&master_cfg, support::node::master_config(port, 1)).expect("master config");
    let master = Node::start(
        "master",
        &master_cfg,
        Some(&show),
        &dir.join("state-master"),
    );
    let addr = master_addr(&master);
    let cfg = dir.join("node-01.json");
    let text = seed_receiver(port, "");
    std::fs::write(&cfg, text).expect("config");
    let mut cmd = Command::new(BIN);
    cmd.args(["receiver", "--headless", "--duration", "60", "--config"])
        .arg(&cfg)
        .env("ROCKONTROL_API_KEY", KEY)
        .env("ROCKONTROL_STATE_DIR", dir.join("state-1"))
        .env("ROCKONTROL_MDNS_INTERFACE", "lo");
    let _receiver = Node::spawn(cmd);
    wait_state(addr, "node-01", "online", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = node_status(addr, "node-01");
        let tc = &status["timecode"];
        let label = tc["label"].as_str().unwrap_or("");
        let master_label = tc["master_label"].as_str().unwrap_or("");
        if label.starts_with("10:00:") && master_label.starts_with("10:00:") && tc["bpm"] == 120.0 {
            assert_eq!(tc["rate"], "25", "{status}");
            assert!(
                tc["beat"][0].as_u64().is_some(),
                "the beat number: {status}"
            );
            assert_eq!(tc["master_bpm"], 120.0, "the sync's tempo: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no timecode and beat in node-01's status: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A 30 fps MTC source written by the MIDI spec (not by our encoder): a full frame locating to
/// `first` (frames since 00:00:00:00), then quarter frames in real time for `how_long`.
fn mtc_source(out: &mut impl std::io::Write, first: u64, how_long: Duration) {
    let (h, m, s) = (first / 108_000, first / 1_800 % 60, first / 30 % 60);
    // Rate 3 (30 fps) in bits 5-6 of the hours byte.
    out.write_all(&[
        0xF0,
        0x7F,
        0x7F,
        0x01,
        0x01,
        (0x60 | h) as u8,
        m as u8,
        s as u8,
        (first % 30) as u8,
        0xF7,
    ])
    .expect("full frame");
    let start = Instant::now();
    let mut q: u64 = 0;
    while start.elapsed() < how_long {
        // Quarter q is due q/120 s in; each group of 8 carries the even frame it began on.
        let due = start + Duration::from_nanos(q * 1_000_000_000 / 120);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = first + (q - q % 8) / 4;
        let (h, m, s, f) = (
            frame / 108_000,
            frame / 1_800 % 60,
            frame / 30 % 60,
            frame % 30,
        );
        let piece = q % 8;
        let nibble = match piece {
            0 => f & 0xF,
            1 => f >> 4,
            2 => s & 0xF,
            3 => s >> 4,
            4 => m & 0xF,
            5 => m >> 4,
            6 => h & 0xF,
            _ => (h >> 4) | (3 << 1),
        };
        out.write_all(&[0xF1, ((piece << 4) | nibble) as u8])
            .expect("quarter frame");
        q += 1;
    }
}

/// MTC quarter frames written to a FIFO at 30 fps in real time, encoded here by the MIDI
/// spec (not by our encoder): the show clock locks to them, and freewheels when they stop.
#[test]
fn the_show_clock_chases_mtc_bytes_from_a_fifo() {
    let dir = temp_dir("tc-mtc-chase");
    let fifo = dir.join("mtc.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo");
    let show = write_show(&dir, "(rate: Smpte30)");
    let run = Run::live(
        &show,
        &[
            "--duration",
            "15s",
            "--timecode-chase",
            &format!("mtc:{}", fifo.display()),
        ],
        &dir,
    );
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("open the FIFO");
            mtc_source(&mut out, 30 * 3600, Duration::from_secs(4));
        })
    };
    let line = wait_for_timecode(&run, Duration::from_secs(6), |label, line| {
        label.starts_with("01:00:0") && line.contains("chasing mtc: locked")
    });
    eprintln!("locked: {line}");
    writer.join().expect("writer");
    wait_for_timecode(&run, Duration::from_secs(4), |_, line| {
        line.contains("chasing mtc: freewheel")
    });
}

/// Tempo typed and tapped at `run`'s console: the status line counts beats at that tempo.
#[test]
fn tempo_is_typed_or_tapped_at_the_console() {
    use std::io::Write;
    let dir = temp_dir("tc-tap");
    let show = write_show(&dir, "()");
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg(&show)
        .args(["--headless", "--duration", "20s"])
        .env("ROCKONTROL_STATE_DIR", dir.join("state"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("run");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout");
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    let mut run = Run { child, lines };
    std::thread::sleep(Duration::from_millis(500));
    writeln!(stdin, "bpm 150").expect("type a tempo");
    wait_for_timecode(&run, Duration::from_secs(5), |_, line| {
        line.contains("at 150.0 BPM")
    });
    // Four taps 0.5 s apart: about 120 BPM.
    for _ in 0..4 {
        writeln!(stdin, "tap").expect("tap");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for_timecode(&run, Duration::from_secs(5), |_, line| {
        line.contains(" BPM") && !line.contains("at 150.0 BPM")
    });
    let out = run.output();
    let tapped = out
        .lines()
        .find(|l| l.starts_with("tempo ") && l.contains("(tapped)"))
        .unwrap_or_else(|| panic!("a tapped tempo is announced:\n{out}"));
    let bpm: f64 = tapped
        .trim_start_matches("tempo ")
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(
        (bpm - 120.0).abs() < 6.0,
        "taps 0.5 s apart are about 120 BPM: {tapped}"
    );
    let _ = run.child.kill();
}

/// Issue 12: the chased timecode steps forward over timecode cues. What a console does: per
/// cue list, the state of the last cue passed (main: cue 3, not 2 then 3; beat: cue 2), in the
/// very first DMX frame after the step, never the state of a cue jumped over. Read on the wire:
/// the ArtTimeCode and ArtDmx packets of the run, in the order they left.
#[test]
fn a_chase_step_over_timecode_cues_lands_on_the_last_cues_state() {
    let dir = temp_dir("tc-jump");
    std::fs::create_dir_all(&dir).expect("dir");
    // The run sends from 127.77.9.5 to a listener at 127.77.9.6:6454 (addresses no other test uses).
    let wire = UdpSocket::bind("127.77.9.6:6454").expect("bind the Art-Net listener");
    wire.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let fifo = dir.join("mtc.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let text = show(
        r#"(rate: Smpte30, start: "01:00:00:00", out: [ArtNet], cues: [
            (at: "01:00:01:00", action: "goto main 1"),
            (at: "01:00:05:00", action: "goto main 2"),
            (at: "01:00:05:15", action: "goto beat 2"),
            (at: "01:00:06:00", action: "goto main 3"),
        ])"#,
    )
    .replace(
        "universes: [(id: 1)]",
        r#"universes: [(id: 1, outputs: [ArtNet(port_address: 0, destination: Unicast(["127.77.9.6"]))])]"#,
    );
    let path = dir.join("show.ron");
    std::fs::write(&path, text).expect("show");
    let _run = Run::live(
        &path,
        &[
            "--duration",
            "20s",
            "--dmx-interface",
            "127.77.9.5",
            "--timecode-chase",
            &format!("mtc:{}", fifo.display()),
        ],
        &dir,
    );
    let writer = std::thread::spawn(move || {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the FIFO");
        // 01:00:00:00 for 3 s (cue 1 at 01:00:01:00 plays), then a locate to 01:00:10:00.
        mtc_source(&mut out, 30 * 3600, Duration::from_secs(3));
        mtc_source(&mut out, 30 * 3610, Duration::from_secs(2));
    });
    // (label frames, None) for ArtTimeCode, (0, Some(slots 1 and 2)) for ArtDmx, in order.
    let mut packets: Vec<(u32, Option<(u8, u8)>)> = Vec::new();
    let after_jump = Timecode::new(1, 0, 10, 0, FrameRate::Smpte30)
        .expect("valid")
        .to_frames();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    loop {
        assert!(
            Instant::now() < deadline,
            "the run's timecode reached 01:00:10:01 within 20 s: {packets:?}"
        );
        let Ok((n, _)) = wire.recv_from(&mut buf) else {
            continue;
        };
        let p = &buf[..n];
        if n < 10 || p[..8] != *b"Art-Net\0" {
            continue;
        }
        match (p[8], p[9]) {
            // ArtTimeCode, by the spec's layout: frames 14, seconds 15, minutes 16, hours 17.
            (0x00, 0x97) => {
                let label = Timecode::new(p[17], p[16], p[15], p[14], FrameRate::Smpte30)
                    .expect("a valid label")
                    .to_frames();
                packets.push((label, None));
                if label > after_jump {
                    break;
                }
            }
            // ArtDmx: data from byte 18.
            (0x00, 0x50) if n >= 20 => packets.push((0, Some((p[18], p[19])))),
            _ => {}
        }
    }
    writer.join().expect("writer");
    let levels: Vec<(u8, u8)> = packets.iter().filter_map(|p| p.1).collect();
    assert!(
        levels.contains(&(51, 0)),
        "cue 1 played before the step: {levels:?}"
    );
    assert!(
        !levels.iter().any(|l| l.0 == 102 || l == &(153, 0)),
        "main's cue 2 and a state without beat's cue 2 are never on the wire: {levels:?}"
    );
    let first_after = packets
        .iter()
        .position(|p| p.1.is_none() && p.0 >= after_jump)
        .expect("a label after the step");
    let next_dmx = packets[first_after..]
        .iter()
        .find_map(|p| p.1)
        .expect("a DMX frame after the step");
    assert_eq!(
        next_dmx,
        (153, 102),
        "the first DMX frame of the new time has main's cue 3 and beat's cue 2"
    );
}

/// Labels of a 30 fps MTC stream read from a FIFO, each with the instant its group of eight
/// quarter frames was complete (parsed by the MIDI spec, not by our decoder).
fn mtc_labels(fifo: PathBuf, how_long: Duration) -> std::thread::JoinHandle<Vec<(Instant, u32)>> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&fifo).expect("open the FIFO");
        let start = Instant::now();
        let mut labels = Vec::new();
        let (mut pending, mut group) = (None::<u8>, [0u8; 8]);
        let mut buf = [0u8; 64];
        while start.elapsed() < how_long {
            let n = file.read(&mut buf).expect("read MTC");
            if n == 0 {
                break;
            }
            let at = Instant::now();
            for b in &buf[..n] {
                match (pending.take(), *b) {
                    (None, 0xF1) => pending = Some(0xF1),
                    (Some(0xF1), data) => {
                        let piece = usize::from(data >> 4);
                        group[piece] = data & 0x0F;
                        if piece == 7 {
                            let v = |i: usize| u32::from(group[i]);
                            let f = v(0) | (v(1) << 4);
                            let s = v(2) | (v(3) << 4);
                            let m = v(4) | (v(5) << 4);
                            let h = v(6) | ((v(7) & 1) << 4);
                            labels.push((at, ((h * 60 + m) * 60 + s) * 30 + f));
                        }
                    }
                    _ => {}
                }
            }
        }
        labels
    })
}

/// Issue 12: a receiver runs the timecode outputs its config names (`timecode_out`) from the
/// replicated show clock, at the master's show's rate and start. Both the master (the show's
/// `out`) and the receiver write MTC to a FIFO; the same label leaves both within one frame.
#[test]
fn a_receiver_sends_mtc_of_the_masters_show_clock() {
    use support::node::{KEY, Node, free_port, master_addr, wait_state};
    let dir = temp_dir("tc-rx-out");
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        assert!(
            Command::new("mkfifo")
                .arg(&path)
                .status()
                .expect("mkfifo")
                .success()
        );
        path
    };
    let (master_fifo, rx_fifo) = (fifo("master.mtc"), fifo("rx.mtc"));
    let port = free_port();
    let show = write_show(
        &dir,
        &format!(
            r#"(rate: Smpte30, start: "10:00:00:00", out: [Mtc("{}")])"#,
            master_fifo.display()
        ),
    );
    let master_cfg = dir.join("master.json");
    std::fs::write(&master_cfg, support::node::master_config(port, 1)).expect("master config");
    let master_reader = mtc_labels(master_fifo, Duration::from_secs(40));
    let master = Node::start(
        "master",
        &master_cfg,
        Some(&show),
        &dir.join("state-master"),
    );
    let addr = master_addr(&master);
    let cfg = dir.join("node-01.json");
    let text = seed_receiver(
        port,
        &format!(r#", "timecode_out": [{{"Mtc": "{}"}}]"#, rx_fifo.display()),
    );
    std::fs::write(&cfg, text).expect("config");
    let mut cmd = Command::new(BIN);
    cmd.args(["receiver", "--headless", "--duration", "60", "--config"])
        .arg(&cfg)
        .env("ROCKONTROL_API_KEY", KEY)
        .env("ROCKONTROL_STATE_DIR", dir.join("state-1"))
        .env("ROCKONTROL_MDNS_INTERFACE", "lo");
    let rx_reader = mtc_labels(rx_fifo, Duration::from_secs(25));
    let _receiver = Node::spawn(cmd);
    wait_state(addr, "node-01", "online", Duration::from_secs(60));
    let rx = rx_reader.join().expect("receiver's MTC");
    drop(master);
    let master = master_reader.join().expect("master's MTC");
    assert!(
        rx.len() > 60,
        "the receiver sent 15 labels a second: {}",
        rx.len()
    );
    let start = Timecode::new(10, 0, 0, 0, FrameRate::Smpte30)
        .expect("valid")
        .to_frames();
    assert!(
        rx.iter().all(|(_, l)| *l >= start),
        "at the master's show's start label and rate"
    );
    // The last 3 s, once clock sync has settled: each label at both within one frame (33 ms).
    let tail = &rx[rx.len().saturating_sub(45)..];
    let mut worst = 0i128;
    for (at, label) in tail {
        let (m_at, _) = master
            .iter()
            .find(|(_, l)| l == label)
            .unwrap_or_else(|| panic!("label {label} from the master too"));
        let diff = at.duration_since(*m_at).as_micros() as i128
            - m_at.duration_since(*at).as_micros() as i128;
        worst = worst.max(diff.abs());
    }
    eprintln!(
        "receiver vs master MTC: worst {worst} µs over {} labels",
        tail.len()
    );
    assert!(
        worst < 33_333,
        "the receiver's labels leave within one frame of the master's: worst {worst} µs"
    );
}

/// The seed's receiver config as node-01 on universe 1, linking to the master on `port` at
/// loopback, its sACN to a discard port, with `extra` JSON fields.
fn seed_receiver(port: u16, extra: &str) -> String {
    rockontrol_net::config::seed::RECEIVER
        .replace("192.168.1.100", "127.0.0.1")
        .replace("9000", &port.to_string())
        .replace("[1, 2]", "[1]")
        .replace(
            "\"auto_discover\": true",
            &format!(
                r#""auto_discover": false, "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9"{extra}"#
            ),
        )
}
