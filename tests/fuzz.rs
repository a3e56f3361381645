//! Fuzzing every decoder that takes network or file input (issue 15, hostile input), as a
//! corpus runner: cargo-fuzz needs a nightly toolchain, which this project does not use.
//!
//! Each target has a kept corpus, `fuzz/corpus/<target>/`: `valid-*` files are real samples
//! (written from our own encoders and seed files) that must decode; `mut-*` files are
//! mutations of them that must not panic. The test feeds every file, then `FUZZ_RUNS` (default
//! 300) random mutations per target (seed `FUZZ_SEED`, default fixed, printed), to the same
//! code the node runs: the WebSocket frame decoders and what a receiver does with a decoded
//! frame, the master's real axum router for REST bodies (in process, real handlers and
//! auth), the node config parser, the show parser and compiler, the clock packet codec, and
//! the media manifest. Any decoder may refuse an input, with an error that names what is
//! wrong (and, for files, the file); none may panic. A panicking input is written to
//! `$CARGO_TARGET_TMPDIR/fuzz-crashes/<target>/` and the test fails listing them.
//! (sACN, Art-Net and USB Pro input has its own corpus and fuzzer in `plugins/wire`.)
//!
//! Long run: `FUZZ_RUNS=100000 cargo test --workspace --release --test fuzz`.
//! Rewrite the seed corpora: `FUZZ_WRITE_SEEDS=1 cargo test --workspace --test fuzz`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use rockontrol_clock::{ClockKey, Ping, Pong, WsClockPacket};
use rockontrol_engine::{Command, CompiledShow, PlaybackState};
use rockontrol_library::{ClipId, Manifest, ManifestEntry};
use rockontrol_net::auth::Keys;
use rockontrol_net::config::{Capability, NodeConfig, Role, Syntax};
use rockontrol_net::master::server::{MasterShared, PluginCommands};
use rockontrol_net::protocol::{
    self, AckStatus, Delta, Hello, HelloAuth, Metrics, NodeCommand, NodeOverride, NodeOverrides,
    Snapshot, ToMaster, ToReceiver, Welcome,
};
use rockontrol_net::registry::Registry;
use tokio::sync::mpsc;

const KEY: &str = "fuzz-control-key-0001";

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

// ---------------------------------------------------------------------------------------
// A small mutator. (Hand-written: cargo-fuzz's libFuzzer needs nightly, and proptest shrinks
// values of a strategy, it does not mutate byte corpora; forty lines do.)

/// SplitMix64: a seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to JSON, RON and the binary codecs.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"(",
    b")",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"-0.0",
    b"NaN",
    b"18446744073709551616",
    b"4294967296",
    b"65536",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\x00",
    b"\xc3",
    b"#![enable(implicit_some)]",
    b"/*",
    b"r#\"",
];

/// One to four mutations of `input`, now and then spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let token = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(i..i, token.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let copy = out[i..i + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            5 => out.truncate(rng.below(len + 1)),
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                // A digit run replaced by a huge or negative number.
                let i = rng.below(len);
                if out[i].is_ascii_digit() {
                    let token =
                        [b"99999999999999999999".as_slice(), b"-7", b"0.5", b"1e40"][rng.below(4)];
                    out.splice(i..i + 1, token.iter().copied());
                }
            }
            _ => {
                // Deep nesting.
                let i = rng.below(len + 1);
                let depth = 1 + rng.below(200);
                let open = if rng.below(2) == 0 { b'[' } else { b'{' };
                out.splice(i..i, std::iter::repeat_n(open, depth));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The targets: each runs one input through the node's own code and says whether it was taken.

type Outcome = Result<(), String>;
/// A target: its corpus name and what runs one input.
type Target<'a> = (&'static str, Box<dyn Fn(&[u8]) -> Outcome + 'a>);

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    // WebSocket text frames and files are UTF-8; lossy keeps the fuzzer exploring the rest.
    String::from_utf8_lossy(bytes)
}

fn ws_to_master(bytes: &[u8]) -> Outcome {
    let frame = protocol::decode_to_master(&text(bytes)).map_err(|e| e.to_string())?;
    if let ToMaster::ClockPing(packet) = frame {
        let raw = packet.to_bytes()?;
        Ping::decode(&raw, &[ClockKey::derive(KEY)]).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn ws_to_receiver(bytes: &[u8]) -> Outcome {
    // What a receiver does with a frame beyond decoding it.
    match protocol::decode_to_receiver(&text(bytes)).map_err(|e| e.to_string())? {
        ToReceiver::Snapshot(snapshot) => {
            snapshot.state().map_err(|e| e.to_string())?;
            snapshot.overrides().map_err(|e| e.to_string())?;
        }
        ToReceiver::Command { command, .. } => {
            command.check().map_err(|e| e.to_string())?;
            command.to_engine(Some("main")).map_err(|e| e.to_string())?;
            NodeOverride::default().apply(&command);
        }
        ToReceiver::Delta(delta) => delta.command.check().map_err(|e| e.to_string())?,
        ToReceiver::ClockPong(packet) => {
            let raw = packet.to_bytes()?;
            Pong::decode(&raw, &ClockKey::derive(KEY)).map_err(|e| e.to_string())?;
        }
        _ => {}
    }
    Ok(())
}

fn node_config(syntax: Syntax) -> impl Fn(&[u8]) -> Outcome {
    move |bytes| {
        NodeConfig::parse(&text(bytes), syntax, "fuzz-node.conf")
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

fn show_ron(bytes: &[u8]) -> Outcome {
    // As `load_show` does: parse, validate (the error names the file), then compile.
    let file = "fuzz.ron".to_string();
    let show = rockontrol_show::parse_show(&text(bytes), &file).map_err(|e| e.to_string())?;
    rockontrol_show::validate(&show)
        .map_err(|errors| rockontrol_show::LoadError::Invalid { file, errors }.to_string())?;
    CompiledShow::compile(&show)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn clock_ping(bytes: &[u8]) -> Outcome {
    Ping::decode(bytes, &[ClockKey::derive(KEY)])
        .map(drop)
        .map_err(|e| e.to_string())
}

fn clock_pong(bytes: &[u8]) -> Outcome {
    Pong::decode(bytes, &ClockKey::derive(KEY))
        .map(drop)
        .map_err(|e| e.to_string())
}

fn media_manifest(bytes: &[u8]) -> Outcome {
    // Clip ids are checked as they are deserialized.
    serde_json::from_slice::<Manifest>(bytes)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The master's real router, in process: real handlers, real auth, no engine behind it (a
/// show command is answered 503, "the engine is busy", once it got that far). No answer may
/// be a 5xx but that 503.
struct Rest {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

impl Rest {
    fn new() -> Rest {
        let config = match NodeConfig::parse(
            rockontrol_net::config::seed::MASTER,
            Syntax::Json,
            "seed master",
        ) {
            Ok(NodeConfig::Master(m)) => m,
            other => panic!("the seed master config: {other:?}"),
        };
        let (show_tx, _) = mpsc::channel(1);
        let shared = Arc::new(MasterShared::new(
            Registry::new(&config, SystemTime::now()),
            Keys {
                control: vec![KEY.into()],
                read_only: vec![],
            },
            show_tx,
            PluginCommands::new(mpsc::channel(1).0),
            None,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let router = {
            let _guard = runtime.enter();
            rockontrol_net::master::router(shared)
        };
        Rest { runtime, router }
    }

    fn post(&self, path: &str, body: &[u8]) -> Outcome {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("request");
        let peer: SocketAddr = "10.0.0.66:40000".parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = self.router.clone();
        let response = self
            .runtime
            .block_on(tower_service::Service::call(&mut router, request))
            .expect("infallible");
        let status = response.status();
        let body = self
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap_or_default();
        assert!(
            !status.is_server_error() || status.as_u16() == 503,
            "POST {path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        // 400, 413, 415 and 422 refuse the body; anything else means it was taken (404: no
        // such pending node, 503: no engine here, …).
        if ![400, 413, 415, 422].contains(&status.as_u16()) {
            Ok(())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds: valid samples from our encoders and seed files.

fn hello() -> ToMaster {
    ToMaster::Hello(Hello {
        node_id: "node-01".into(),
        role: Role::Receiver,
        version: "0.1.0".into(),
        protocol: 1,
        protocol_hash: protocol::protocol_hash(),
        capabilities: vec![Capability::DmxOutput],
        universes: vec![1, 2],
        auth: Some(HelloAuth {
            key_id: "0011223344556677".into(),
            nonce: "ab".repeat(32),
        }),
    })
}

fn seeds() -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let key = ClockKey::derive(KEY);
    let ping = Ping {
        session: 7,
        seq: 42,
        t1: 1_000_000_123,
    }
    .encode(&key);
    let pong = Pong {
        session: 7,
        seq: 42,
        t1: 1_000_000_123,
        t2: 1_000_050_000,
        t3: 1_000_060_000,
        master_clock: 99,
        show_ns: Some(5_000_000_000),
    }
    .encode(&key);
    let mut s: BTreeMap<&'static str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        s.entry(target).or_default().push((name.to_string(), bytes));
    };
    for (name, msg) in [
        ("hello", hello()),
        (
            "proof",
            ToMaster::Proof {
                proof: "cd".repeat(32),
            },
        ),
        (
            "heartbeat",
            ToMaster::Heartbeat {
                status: "online".into(),
                metrics: Box::new(Metrics {
                    dmx_fps: 44.0,
                    frames_out: 4400,
                    seq: 12,
                    tick: 4410,
                    show_hash: Some("ab".repeat(32)),
                    ..Metrics::default()
                }),
            },
        ),
        (
            "ack",
            ToMaster::Ack {
                command_id: "cmd-12345".into(),
                status: AckStatus::Failed,
                reason: Some("no such cue".into()),
            },
        ),
        (
            "snapshot-request",
            ToMaster::SnapshotRequest {
                reason: "gap".into(),
            },
        ),
        (
            "clock-ping",
            ToMaster::ClockPing(WsClockPacket::from_bytes(&ping)),
        ),
    ] {
        add("ws_to_master", name, protocol::encode(&msg).into_bytes());
    }
    let state = PlaybackState {
        grand_master: 0.8,
        blackout: false,
        action_seq: 3,
        playbacks: vec![rockontrol_engine::PlaybackRun {
            cue: Some(1),
            master: 1.0,
            go_tick: 220,
            from: vec![0.0, f32::NAN],
            to: vec![1.0, 0.5],
            timing: vec![0, 0],
            ..Default::default()
        }],
        effects: Vec::new(),
    };
    let command: NodeCommand =
        serde_json::from_str(r#"{"type": "cue", "cue_id": 1.5, "fade_time": 3.0}"#)
            .expect("the seed's command");
    for (name, msg) in [
        (
            "challenge",
            ToReceiver::Challenge {
                master_id: "master-01".into(),
                nonce: "ef".repeat(32),
                proof: "01".repeat(32),
            },
        ),
        (
            "welcome",
            ToReceiver::Welcome(Welcome {
                master_id: "master-01".into(),
                version: "0.1.0".into(),
                protocol_hash: protocol::protocol_hash(),
                assigned_universes: vec![1, 2],
                show_hash: Some("ab".repeat(32)),
                heartbeat_ms: 1000,
                reconnect_ms: 2000,
            }),
        ),
        (
            "refused",
            ToReceiver::Refused {
                reason: "wrong key".into(),
            },
        ),
        (
            "snapshot",
            ToReceiver::Snapshot(Snapshot::new(
                3,
                221,
                44,
                Some("ab".repeat(32)),
                Some(&state),
                &NodeOverrides::new(),
                &BTreeMap::new(),
            )),
        ),
        (
            "delta",
            ToReceiver::Delta(Delta {
                seq: 7,
                tick: 440,
                command: Command::Go {
                    playback: "main".into(),
                    fade: None,
                },
            }),
        ),
        (
            "command",
            ToReceiver::Command {
                command_id: "cmd-1".into(),
                attempt: 1,
                command,
            },
        ),
        (
            "sync",
            ToReceiver::Sync {
                tick: 440,
                rate: 44,
                timecode: protocol::timecode(440, 44),
                bpm: Some(120.0),
            },
        ),
        (
            "clock-pong",
            ToReceiver::ClockPong(WsClockPacket::from_bytes(&pong)),
        ),
    ] {
        add("ws_to_receiver", name, protocol::encode(&msg).into_bytes());
    }
    for (target, name, body) in [
        (
            "rest_register",
            "register",
            r#"{"node_id": "node-09", "capabilities": ["dmx_output"], "universes": [9]}"#,
        ),
        (
            "rest_command",
            "cue",
            r#"{"type": "cue", "cue_id": 1.5, "fade_time": 3.0, "playback": "main"}"#,
        ),
        (
            "rest_command",
            "go",
            r#"{"type": "go", "playback": "main"}"#,
        ),
        (
            "rest_command",
            "engine-go",
            r#"{"type": "go", "playback": "main", "fade": 2.0}"#,
        ),
        (
            "rest_node_command",
            "identify",
            r#"{"type": "identify", "seconds": 5}"#,
        ),
        (
            "rest_node_command",
            "media",
            r#"{"type": "media", "action": "play", "clip": "intro", "position": 1.5}"#,
        ),
        ("rest_adopt", "adopt", r#"{"connection": 3}"#),
        (
            "rest_heartbeat",
            "heartbeat",
            r#"{"node_id": "node-01", "status": "online", "metrics": {"dmx_fps": 44.0, "frames_out": 10}}"#,
        ),
        (
            "rest_ack",
            "ack",
            r#"{"node_id": "node-01", "command_id": "cmd-1", "status": "executed"}"#,
        ),
    ] {
        add(target, name, body.as_bytes().to_vec());
    }
    add(
        "node_config_json",
        "seed-master",
        rockontrol_net::config::seed::MASTER.as_bytes().to_vec(),
    );
    add(
        "node_config_json",
        "seed-receiver",
        rockontrol_net::config::seed::RECEIVER.as_bytes().to_vec(),
    );
    if let Ok(NodeConfig::Master(m)) = NodeConfig::parse(
        rockontrol_net::config::seed::MASTER,
        Syntax::Json,
        "seed master",
    ) {
        let ron = ron::ser::to_string_pretty(&m, ron::ser::PrettyConfig::default())
            .expect("the master config as RON");
        add("node_config_ron", "seed-master", ron.into_bytes());
    }
    let demo = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shows/demo.ron"))
        .expect("shows/demo.ron");
    add("show_ron", "demo", demo);
    add("clock_ping", "ping", ping);
    add("clock_pong", "pong", pong);
    let manifest = Manifest {
        node_id: "node-01".into(),
        clips: vec![ManifestEntry {
            id: ClipId::of(b"intro"),
            name: "intro".into(),
            size: 1_000_000,
            sources: vec!["10.0.0.5:9100".into()],
        }],
        unavailable: vec!["outro".into()],
        peer_certificates: [(
            "10.0.0.5:9100".to_string(),
            rockontrol_tls::Fingerprint([0xab; 32]).to_string(),
        )]
        .into(),
    };
    add(
        "media_manifest",
        "manifest",
        serde_json::to_vec_pretty(&manifest).expect("manifest"),
    );
    s
}

// ---------------------------------------------------------------------------------------

fn read_corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read the corpus {}: {e}; write it with FUZZ_WRITE_SEEDS=1",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("corpus file");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Writes the seeds and, per seed, eight kept mutations (the committed corpora).
fn write_seeds() {
    let mut rng = Rng(0x5eed_c0de);
    for (target, samples) in seeds() {
        let dir = corpus_root().join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, (name, bytes)) in samples.iter().enumerate() {
            std::fs::write(dir.join(format!("valid-{name}")), bytes).expect("seed");
            let other = &samples[(i + 1) % samples.len()].1;
            for m in 0..8 {
                std::fs::write(
                    dir.join(format!("mut-{name}-{m}")),
                    mutate(&mut rng, bytes, other),
                )
                .expect("mutation");
            }
        }
    }
}

#[test]
fn every_decoder_survives_its_corpus_and_random_mutations() {
    if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let runs: usize = std::env::var("FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let rest = Rest::new();
    let rest = &rest;
    let post = |path: &'static str| move |bytes: &[u8]| rest.post(path, bytes);
    let targets: Vec<Target<'_>> = vec![
        ("ws_to_master", Box::new(ws_to_master)),
        ("ws_to_receiver", Box::new(ws_to_receiver)),
        ("rest_register", Box::new(post("/api/nodes/register"))),
        ("rest_command", Box::new(post("/api/command"))),
        (
            "rest_node_command",
            Box::new(post("/api/nodes/node-01/command")),
        ),
        ("rest_adopt", Box::new(post("/api/nodes/node-09/adopt"))),
        ("rest_heartbeat", Box::new(post("/api/master/heartbeat"))),
        ("rest_ack", Box::new(post("/api/master/ack"))),
        ("node_config_json", Box::new(node_config(Syntax::Json))),
        ("node_config_ron", Box::new(node_config(Syntax::Ron))),
        ("show_ron", Box::new(show_ron)),
        ("clock_ping", Box::new(clock_ping)),
        ("clock_pong", Box::new(clock_pong)),
        ("media_manifest", Box::new(media_manifest)),
    ];
    let crash_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let mut rng = Rng(seed);
    let mut crashes: Vec<String> = Vec::new();
    let mut invalid_seeds: Vec<String> = Vec::new();
    let mut unnamed: Vec<String> = Vec::new();
    let mut total = 0usize;
    println!("fuzz: seed {seed}, {runs} mutations per target");
    for (target, run) in &targets {
        let corpus = read_corpus(&corpus_root().join(target));
        assert!(
            corpus.iter().any(|(n, _)| n.starts_with("valid-")),
            "{target}: no valid seed"
        );
        let mut one = |label: String, input: &[u8]| {
            total += 1;
            match catch_unwind(AssertUnwindSafe(|| run(input))) {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    let names_file = !target.starts_with("node_config") && *target != "show_ron"
                        || e.contains("fuzz");
                    if e.trim().is_empty() || !names_file {
                        unnamed.push(format!("{target}/{label}: {e:?}"));
                    }
                    false
                }
                Err(_) => {
                    let dir = crash_dir.join(target);
                    let _ = std::fs::create_dir_all(&dir);
                    let path = dir.join(format!("crash-{}", crashes.len()));
                    let _ = std::fs::write(&path, input);
                    crashes.push(format!("{target}/{label} (kept as {})", path.display()));
                    false
                }
            }
        };
        let (mut taken, mut refused) = (0usize, 0usize);
        for (name, bytes) in &corpus {
            let ok = one(name.clone(), bytes);
            if name.starts_with("valid-") && !ok {
                invalid_seeds.push(format!("{target}/{name}"));
            }
            if ok { taken += 1 } else { refused += 1 }
        }
        for i in 0..runs {
            let a = &corpus[rng.below(corpus.len())].1;
            let b = &corpus[rng.below(corpus.len())].1;
            let input = mutate(&mut rng, a, b);
            if one(format!("mutation {i}"), &input) {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        println!(
            "fuzz {target}: {} corpus files + {runs} mutations: {taken} taken, {refused} refused",
            corpus.len()
        );
    }
    println!("fuzz: {total} inputs in all, {} crashes", crashes.len());
    assert!(
        crashes.is_empty(),
        "decoders panicked on {} inputs:\n{}",
        crashes.len(),
        crashes.join("\n")
    );
    assert!(
        invalid_seeds.is_empty(),
        "valid seeds refused: {invalid_seeds:?}"
    );
    assert!(
        unnamed.is_empty(),
        "{} errors do not say what or where, among them: {:?}",
        unnamed.len(),
        &unnamed[..unnamed.len().min(5)]
    );
}
