//! `rockontrol render --png-dir`: cues fired by the engine start clips on a media layer, and
//! the PNG frames written hold exactly the frames the show clock chooses (read back from
//! each frame's block code).

#[path = "support/skip.rs"]
mod skip;

use std::path::PathBuf;
use std::process::Command;

use rockontrol_media::testclip::{Codec, read_rendered, write_test_clip};
use rockontrol_show::FrameRate;

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");
const S: u64 = 1_000_000_000;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rk-media-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const SHOW: &str = r#"(
    name: "media cues",
    cue_lists: [(name: "main", cues: [
        (number: 1),
        (number: 2, delay: 0.5),
    ])],
    playbacks: [(name: "main", cue_list: "main")],
    media: (
        outputs: [(name: "wall", node: "node-01", width: 320, height: 180, rate: "30")],
        layers: [(name: "bg", output: "wall")],
        cues: [
            (cue_list: "main", cue: 1, actions: [Play(layer: "bg", clip: "count")]),
            (cue_list: "main", cue: 2, actions: [Play(layer: "bg", clip: "count", from: 2.0)]),
        ],
    ),
)"#;

#[test]
fn cues_start_clips_and_the_rendered_frames_follow_the_show_clock() {
    let dir = temp_dir();
    let clip = dir.join("count.mp4");
    if let Err(e) = write_test_clip(&clip, 120, FrameRate::whole(30), 320, 180, Codec::H264) {
        skip::unavailable(
            "cues_start_clips_and_the_rendered_frames_follow_the_show_clock",
            &e.to_string(),
        );
        return;
    }
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("write show");
    let frames = dir.join("frames");
    let out = Command::new(BIN)
        .arg("render")
        .arg(&show)
        .args(["--until", "3s", "--at", "1s go main", "--at", "2s go main"])
        .arg("--png-dir")
        .arg(&frames)
        .arg("--clip")
        .arg(format!("count={}", clip.display()))
        .output()
        .expect("run rockontrol");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("no GPU adapter") {
        skip::unavailable(
            "cues_start_clips_and_the_rendered_frames_follow_the_show_clock",
            &stderr,
        );
        return;
    }
    assert!(out.status.success(), "render failed: {stderr}");
    assert!(out.stdout.is_empty(), "no DMX on stdout without --out");
    assert!(stderr.contains("wrote 91 frames"), "{stderr}");

    // The engine ticks at 44 Hz: `1s go main` is tick 44, show time ⌈44/44⌉ s = 1 s exactly;
    // cue 2 goes at 2 s and starts after its 0.5 s delay, 2 s into the clip (frame 60).
    let rendered = read_rendered(&frames).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rendered.len(), 91);
    for (k, got) in rendered {
        let t = (k * S).div_ceil(30); // refresh k of a 30 Hz output
        let want = if t < S {
            None
        } else if t < 2 * S + S / 2 {
            Some((t - S) * 30 / S)
        } else {
            Some(60 + (t - 2 * S - S / 2) * 30 / S)
        };
        assert_eq!(got.map(u64::from), want, "refresh {k} at {t} ns");
    }
    let csv = std::fs::read_to_string(frames.join("frames.csv")).expect("frames.csv");
    assert!(
        csv.starts_with("refresh,show_ns,layer,clip,frame\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\n30,1000000000,bg,count,0\n"),
        "refresh 30 shows frame 0: {csv}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
