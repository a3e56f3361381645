//! The `rockontrol` binary as a user runs it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shows/demo.ron")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("ROCKONTROL_STATE_DIR", temp("state"))
        .output()
        .expect("run rockontrol");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_demo_and_names_every_problem_of_a_broken_show() {
    let demo = demo();
    let (code, out, _) = run(&["check", demo.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(out.contains("OK") && out.contains("16 fixtures"), "{out}");

    let broken = temp("broken.ron");
    std::fs::write(
        &broken,
        "(\n  name: \"x\",\n  universes: [(id: 1)\n  fixtures: [],\n)",
    )
    .expect("write");
    let (code, _, err) = run(&["check", broken.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("{}:4:3: ", broken.display())),
        "file:line:column first: {err}"
    );

    let invalid = temp("invalid.ron");
    let text = std::fs::read_to_string(&demo)
        .expect("demo")
        .replace("address: 7, position", "address: 6, position") // Par 2 onto Par 1's last slot
        .replace("universe: 2, address: 49,", "universe: 2, address: 510,"); // Spot 4 past 512
    std::fs::write(&invalid, text).expect("write");
    let (code, _, err) = run(&["check", invalid.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert!(err.contains("2 problems in the show"), "{err}");
    assert!(
        err.contains(
            "fixtures 101 \"Par 1\" and 102 \"Par 2\" overlap in universe 1 at addresses 6..=6"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "fixture 204 \"Spot 4\": address 510 + 16 channels ends at 525, past 512 in universe 2"
        ),
        "{err}"
    );
}

#[test]
fn render_is_deterministic_and_exact() {
    let demo = demo();
    let args = [
        "render",
        demo.to_str().expect("utf8"),
        "--until",
        "10s",
        "--universe",
        "1",
        "--at",
        "0s go main",
        "--at",
        "5s go main",
        "--at",
        "7.5s goto main 3",
        "--at",
        "9s blackout",
    ];
    let (code, first, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = run(&args);
    assert_eq!(first, second, "same input, same bytes");
    let rows: Vec<&str> = first.lines().collect();
    assert_eq!(rows.len(), 1 + 441, "header + ticks 0..=440 of universe 1");
    let slot = |tick: usize, address: usize| -> u8 {
        rows[1 + tick]
            .split(',')
            .nth(2 + address)
            .expect("column")
            .parse()
            .expect("number")
    };
    assert_eq!(&rows[1][..13], "0,0.000000,1,", "tick, time, universe");
    // Cue 1: pars' dimmer (slot 1) 0 → full over 3 s (132 ticks); red (slot 2) likewise.
    assert_eq!(slot(66, 1), 128, "half way through the 3 s fade");
    assert_eq!(slot(132, 1), 255);
    // Cue 3 by GOTO at 7.5 s (tick 330): blue (slot 4) fades to full over 4 s from 0.1 (26).
    assert_eq!(slot(330, 4), 26, "blue where cue 1 left it at the GOTO");
    assert_eq!(
        slot(374, 4),
        ((0.1 + 0.9 * 0.25) * 255.0_f64 + 0.5) as u8,
        "a quarter into the 4 s fade"
    );
    // Blackout at 9 s (tick 396): intensity 0, colour untouched.
    // Cue 3 takes the pars' dimmer from full down to 0.7 over its 2 s fade-out (88 ticks).
    assert_eq!(
        slot(395, 1),
        ((1.0 - 0.3 * 65.0 / 88.0) * 255.0_f64 + 0.5) as u8,
        "65 ticks into the fade-out"
    );
    assert_eq!(slot(396, 1), 0, "blackout");
    assert!(slot(396, 4) > 100, "blue stays through blackout");

    let json = temp("out.jsonl");
    let (code, _, err) = run(&[
        "render",
        demo.to_str().expect("utf8"),
        "--until",
        "0.5s",
        "--format",
        "json",
        "-o",
        json.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&json).expect("json written");
    assert_eq!(text.lines().count(), 23 * 2, "ticks 0..=22 × 2 universes");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("line")).expect("valid JSON");
    assert_eq!(
        (first["tick"].as_u64(), first["universe"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(first["dmx"].as_array().map(|a| a.len()), Some(512));

    let (code, _, err) = run(&[
        "render",
        demo.to_str().expect("utf8"),
        "--until",
        "1s",
        "--at",
        "0.5s go nowhere",
    ]);
    assert_eq!(code, 0, "a refused action does not stop the render");
    assert!(
        err.contains("go nowhere refused: no playback named \"nowhere\""),
        "{err}"
    );
    let (code, _, err) = run(&[
        "render",
        demo.to_str().expect("utf8"),
        "--until",
        "1s",
        "--universe",
        "9",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("universe(s) [9] not in the show"), "{err}");
}

#[test]
fn fmt_writes_canonical_form_and_guards_comments() {
    let demo = demo();
    let copy = temp("fmt.ron");
    std::fs::copy(&demo, &copy).expect("copy");
    let (code, _, err) = run(&["fmt", copy.to_str().expect("utf8")]);
    assert_eq!(
        code, 1,
        "the demo has comments: fmt refuses to drop them silently"
    );
    assert!(err.contains("--drop-comments"), "{err}");
    let (code, _, _) = run(&["fmt", copy.to_str().expect("utf8"), "--drop-comments"]);
    assert_eq!(code, 0);
    let canonical = std::fs::read_to_string(&copy).expect("read");
    let (code, out, _) = run(&["fmt", copy.to_str().expect("utf8"), "--check"]);
    assert_eq!((code, out.as_str()), (0, ""), "canonical after fmt");
    let (code, out, _) = run(&["fmt", copy.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(out.contains("already canonical"));
    assert_eq!(
        std::fs::read_to_string(&copy).expect("read"),
        canonical,
        "fmt is idempotent"
    );
    let (code, _, _) = run(&["check", copy.to_str().expect("utf8")]);
    assert_eq!(code, 0, "the canonical show is still valid");
}

#[test]
fn run_takes_commands_and_stops_within_a_second_on_sigint() {
    let demo = demo();
    let mut child = Command::new(BIN)
        .args([
            "run",
            demo.to_str().expect("utf8"),
            "--headless",
            "--at",
            "0.2s go main",
        ])
        .env("ROCKONTROL_STATE_DIR", temp("state-run"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start run");
    std::thread::sleep(Duration::from_millis(1500));
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "goto main 3").expect("type a command");
        writeln!(stdin, "no such thing").expect("type garbage");
    }
    std::thread::sleep(Duration::from_millis(1300));
    let sent = Instant::now();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "run did not stop within 5 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stopped_after = sent.elapsed();
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(status.success(), "clean exit: {status:?}\n{out}");
    assert!(
        stopped_after < Duration::from_secs(1),
        "stopped {stopped_after:?} after SIGINT"
    );
    assert!(out.contains("main → cue 1 \"Warm wash\""), "{out}");
    assert!(
        out.contains("main → cue 3 \"Deep blue\""),
        "typed GOTO applied: {out}"
    );
    assert!(
        out.contains("| 4") && out.contains("Hz | main cue 3"),
        "status line with rate and cue: {out}"
    );
    assert!(out.trim_end().ends_with("stopped"), "{out}");
}

fn corpus() -> PathBuf {
    let root = std::env::var_os("ROCKONTROL_QLC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/qlc-corpus"));
    let share = root.join("usr/share/qlcplus");
    assert!(
        share.is_dir(),
        "QLC+ corpus missing at {}: run scripts/fetch-qlc-corpus.sh",
        share.display()
    );
    share
}

#[test]
fn fixtures_import_search_and_show_through_the_binary() {
    let library = temp("library");
    let _ = std::fs::remove_dir_all(&library);
    let martin = corpus().join("fixtures/Martin");
    let (code, out, err) = run(&[
        "fixtures",
        "import",
        martin.to_str().expect("utf8"),
        "--out",
        library.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "Martin's definitions import: {out}{err}");
    let summary = format!("{out}{err}");
    assert!(
        summary.contains("imported"),
        "a summary counts the results: {summary}"
    );
    let imported = std::fs::read_dir(library.join("Martin"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        imported > 50,
        "Martin profiles written to the library, found {imported}"
    );

    let lib = library.to_str().expect("utf8");
    let (code, out, err) = run(&["fixtures", "search", "mac 250", "--library", lib]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Martin/MAC 250 Wash"),
        "search finds the fixture by words: {out}"
    );
    let (code, out, err) = run(&["fixtures", "show", "Martin/MAC 250 Wash", "--library", lib]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("MAC 250 Wash") && out.to_lowercase().contains("mode"),
        "show lists modes: {out}"
    );
    let (code, _, err) = run(&[
        "fixtures",
        "show",
        "Martin/No Such Fixture",
        "--library",
        lib,
    ]);
    assert_eq!(code, 1, "an unknown fixture is an error");
    assert!(!err.is_empty(), "with a message");

    let bad = temp("bad.qxf");
    std::fs::write(&bad, "<FixtureDefinition><Manufacturer>Acme</Manufacturer>").expect("write");
    let (code, out, err) = run(&[
        "fixtures",
        "import",
        bad.to_str().expect("utf8"),
        "--out",
        library.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 1, "a broken definition fails the batch's exit code");
    assert!(
        format!("{out}{err}").contains("bad.qxf"),
        "the error names the file: {out}{err}"
    );
}

#[test]
fn qlc_workspace_converts_to_a_show_that_checks_and_renders() {
    let sample = corpus().join("Sample.qxw");
    let show = temp("sample.ron");
    let (code, out, err) = run(&[
        "import-qlc",
        sample.to_str().expect("utf8"),
        "-o",
        show.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["check", show.to_str().expect("utf8")]);
    assert_eq!(code, 0, "the converted show is valid: {out}{err}");
    assert!(out.contains("26 fixtures"), "{out}");
    let (code, out, err) = run(&[
        "render",
        show.to_str().expect("utf8"),
        "--until",
        "2s",
        "--at",
        "0s go SC-Pan",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "the GO was accepted: {err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows.len() > 88, "2 s of frames");
    let first = rows[1];
    let last = rows[rows.len() - 1];
    assert_ne!(
        first.split(',').skip(3).collect::<Vec<_>>(),
        last.split(',').skip(3).collect::<Vec<_>>(),
        "the chaser moves the output"
    );
}

/// Issue 10, defect 3: a live `run` computes the same frames as `render` for a script with
/// same-tick edge cases (a GO on the tick a follow is due, a 0 s release, two commands in one
/// tick). The in-process master comparison is in `plugins/net/tests/command_seam.rs`.
#[test]
fn a_live_run_captures_the_same_frames_as_render() {
    let show = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/net/tests/data/seam.ron");
    let show = show.to_str().expect("utf8");
    let script = [
        (2u32, "go main"),
        (24, "go main"),
        (30, "go fx"),
        (40, "release fx"),
        (50, "gm 0.4"),
        (50, "back main"),
    ];
    let last_tick = 100usize;
    // Show time of a tick, rounded down to 0.1 µs (which `--at` takes back to the tick).
    let secs = |tick: f64| format!("{:.7}s", (tick / 44.0 * 1e7).floor() / 1e7);
    let mut at = Vec::new();
    for (tick, command) in script {
        at.push("--at".to_string());
        at.push(format!("{} {command}", secs(f64::from(tick))));
    }
    let until = secs(last_tick as f64);
    let mut args = vec!["render", show, "--until", &until];
    args.extend(at.iter().map(String::as_str));
    let (code, rendered, err) = run(&args);
    assert_eq!(code, 0, "render: {err}");
    let rendered: Vec<&str> = rendered.lines().collect();
    assert_eq!(
        rendered.len(),
        1 + last_tick + 1,
        "header + ticks 0..={last_tick}"
    );

    let capture = temp("seam-capture.csv");
    let mut args = vec![
        "run",
        show,
        "--headless",
        "--duration",
        "4s",
        "--capture",
        capture.to_str().expect("utf8"),
    ];
    args.extend(at.iter().map(String::as_str));
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "run: {out}\n{err}");
    let captured = std::fs::read_to_string(&capture).expect("capture written");
    let captured: Vec<&str> = captured.lines().collect();
    assert!(
        captured.len() > 1 + last_tick,
        "a 4 s run captures more than {last_tick} ticks, got {} rows",
        captured.len()
    );
    for (tick, row) in rendered.iter().enumerate() {
        assert_eq!(
            captured[tick],
            *row,
            "row {tick} (tick {}): the live run differs from render",
            tick.saturating_sub(1)
        );
    }
}
