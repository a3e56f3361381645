//! `rockontrol receiver --fullscreen` end to end: the real binary, on a private Xvfb (lavapipe),
//! with a show whose output is `Offscreen` (the flag is what puts it fullscreen) and a clip made
//! here (each frame carries its number as a block code, 30 fps, 20 s, looping). Screenshots of the
//! whole X screen (`xwd -root`, an independent reader of what is on screen) must show the
//! output covering the 640×360 screen (the 320×180 canvas scaled 2×) and playing: two frame
//! numbers read a known wall time apart advance by 30 per second (±15 frames: lavapipe's
//! refresh on a loaded machine and the time xwd takes).

#![cfg(feature = "ui")]

#[path = "support/skip.rs"]
mod skip;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rockontrol_media::blockcode;
use rockontrol_media::testclip::{Codec, write_test_clip};
use rockontrol_show::FrameRate;
use rockontrol_ui::script::Xvfb;

const W: u32 = 320;
const H: u32 = 180;

/// The root window of `display` through `xwd`, as (width, height, RGB rows).
fn xwd_root(display: &str) -> Result<(u32, u32, Vec<u8>), String> {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .map_err(|e| format!("cannot run xwd (apt install x11-apps): {e}"))?;
    if !out.status.success() {
        return Err(format!("xwd: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let d = out.stdout;
    let word = |i: usize| -> Result<u32, String> {
        d.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "short XWD header".to_string())
    };
    // XWD header (X11 XWDFileHeader): header size, …, width (4), height (5), byte order (7),
    // bits per pixel (11), bytes per line (12), colormap entries (19).
    let (header, w, h, order, bpp, bpl, colours) = (
        word(0)?,
        word(4)?,
        word(5)?,
        word(7)?,
        word(11)?,
        word(12)?,
        word(19)?,
    );
    if bpp != 32 {
        return Err(format!(
            "XWD with {bpp} bits per pixel; expected 32 (a 24-bit Xvfb)"
        ));
    }
    let start = header as usize + colours as usize * 12;
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        for x in 0..w as usize {
            let i = start + y * bpl as usize + x * 4;
            let p = d.get(i..i + 4).ok_or("short XWD data")?;
            // 0x00RRGGBB in the file's byte order.
            let v = if order == 0 {
                u32::from_le_bytes([p[0], p[1], p[2], p[3]])
            } else {
                u32::from_be_bytes([p[0], p[1], p[2], p[3]])
            };
            rgb.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
        }
    }
    Ok((w, h, rgb))
}

/// The frame number on a screen that shows the canvas scaled 2×.
fn frame_on_screen(display: &str) -> Result<u32, String> {
    let (w, h, rgb) = xwd_root(display)?;
    if (w, h) != (2 * W, 2 * H) {
        return Err(format!("the screen is {w}×{h}"));
    }
    let mut rgba = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            let i = ((2 * y * w + 2 * x) * 3) as usize;
            rgba.extend_from_slice(&[rgb[i], rgb[i + 1], rgb[i + 2], 255]);
        }
    }
    blockcode::read(&rgba, W, H).map_err(|e| e.to_string())
}

#[test]
fn receiver_fullscreen_shows_the_output_playing() {
    let dir = std::env::temp_dir().join(format!("rk-media-fullscreen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("clips")).expect("temp dir");
    if let Err(e) = write_test_clip(
        &dir.join("clips/count.mp4"),
        600,
        FrameRate::whole(30),
        W,
        H,
        Codec::H264,
    ) {
        return skip::unavailable(
            "receiver_fullscreen_shows_the_output_playing",
            &e.to_string(),
        );
    }
    if Command::new("xwd").arg("-help").output().is_err() {
        return skip::unavailable(
            "receiver_fullscreen_shows_the_output_playing",
            "no xwd (apt install x11-apps)",
        );
    }
    let xvfb = match Xvfb::start((2 * W, 2 * H)) {
        Ok(x) => x,
        Err(e) => return skip::unavailable("receiver_fullscreen_shows_the_output_playing", &e),
    };
    std::fs::write(
        dir.join("show.ron"),
        r#"(
    name: "fullscreen",
    media: (
        outputs: [(name: "wall", node: "node-01", width: 320, height: 180, rate: "60")],
        layers: [(name: "a", output: "wall", clip: Some("count"), start: Some(0.0), end: Loop)],
    ),
)"#,
    )
    .expect("show");
    // No master listens on port 1: the receiver runs its own show meanwhile.
    std::fs::write(
        dir.join("node.json"),
        format!(
            r#"{{"role": "receiver", "node_id": "node-01", "master_ip": "127.0.0.1", "master_port": 1,
  "local_universes": [1], "auto_discover": false, "state_dir": "{}"}}"#,
            dir.join("state").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rockontrol"))
        .args([
            "receiver",
            "--config",
            "node.json",
            "--show",
            "show.ron",
            "--fullscreen",
        ])
        .args(["--monitor", "0", "--clips-dir", "clips", "--duration", "40"])
        .current_dir(&dir)
        .envs(xvfb.env())
        .env("XDG_RUNTIME_DIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the receiver");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut result = Err("no screenshot yet".to_string());
    let mut first = None;
    while Instant::now() < deadline {
        let at = Instant::now();
        match (frame_on_screen(&xvfb.display), first) {
            (Ok(f), None) => first = Some((at, f)),
            (Ok(f), Some((t0, f0))) if at - t0 >= Duration::from_secs(2) => {
                let expected = (at - t0).as_secs_f64() * 30.0;
                let advanced = f64::from(f) - f64::from(f0);
                result = if (advanced - expected).abs() <= 15.0 {
                    Ok(format!(
                        "frame {f0} then {f} {:.2} s later (expected +{expected:.0} ± 15)",
                        (at - t0).as_secs_f64()
                    ))
                } else {
                    Err(format!(
                        "frame {f0} then {f} {:.2} s later: advanced {advanced}, expected {expected:.0}",
                        (at - t0).as_secs_f64()
                    ))
                };
                break;
            }
            (Ok(_), Some(_)) => {}
            (Err(e), _) => result = Err(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(line) => println!("receiver --fullscreen on screen: {line}"),
        Err(e) => panic!("receiver --fullscreen: {e}"),
    }
}
