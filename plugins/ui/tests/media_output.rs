//! Live media outputs on screen, checked from screenshots of their windows.
//!
//! A clip made here with ffmpeg (each frame carries its number as a block code, 30 fps,
//! 90 frames, starting at show time 0.5 s and holding its last frame) plays on two outputs of
//! a private Xvfb (lavapipe, no GPU needed), composited on Bevy's render device into the
//! texture the windows sample:
//! - `main`, **fullscreen on monitor 0** (a 640×360 screen: the 320×180 canvas is scaled 2×,
//!   and the window must cover the screen): a screenshot while the clip plays reads back the
//!   frame number the show clock chose for that refresh, `⌊(t − 0.5 s) · 30⌋`, computed here
//!   from the refresh's show time `t`. The screenshot is of the very refresh whose draw list
//!   was built in the same update (the capture and the draw list are extracted together), so
//!   the frame must be exact; the one-refresh uncertainty of a scanout-timed display (16.7 ms
//!   at 60 Hz, half a content frame) does not apply to a screenshot of the rendered surface.
//! - `split`, **windowed with two regions** (the canvas's halves swapped, as two processors
//!   wired the other way round): its screenshot, once the clip holds its last frame, equals
//!   the CPU reference `place_regions` applied to the main window's picture (±2 per channel
//!   for the sRGB round trip).
//!
//! - **Stage preview**: in the programmer window, an offscreen output's picture is drawn 1:1
//!   over the stage; the layer is paused at a chosen show time `T` (a media command in the
//!   timeline), and the frame number read from a screenshot of the preview is exactly the
//!   one paused on, `⌊(T − 0.5 s) · 30⌋`, computed here.
//!
//! The test re-runs itself as a child process on the Xvfb (winit wants the main thread and
//! the display must be set before the process starts).

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{ExitCondition, WindowMode};
use bevy::winit::{UpdateMode, WinitSettings};
use rockontrol_engine::{EnginePlugin, load_show};
use rockontrol_media::output::{LiveOutput, LiveOutputs, MediaClipFiles, MediaOutputPlugin};
use rockontrol_media::regions::{place_regions, placements};
use rockontrol_media::testclip::{Codec, write_test_clip};
use rockontrol_media::{MediaCommand, MediaPlugin, MediaShow, PlaybackReport, Rgba, blockcode};
use rockontrol_show::{FrameRate, parse_show};
use rockontrol_ui::media_preview::MediaPreviewLayout;
use rockontrol_ui::script::{
    LastScreenshot, SCRIPT_WINDOW, ScriptStep, UiScript, Xvfb, rgb_image, scripted_app,
    window_plugins,
};

const CHILD: &str = "ROCKONTROL_MEDIA_OUTPUT_CHILD";
const CLIP: &str = "ROCKONTROL_MEDIA_OUTPUT_CLIP";
const W: u32 = 320;
const H: u32 = 180;
const S: u64 = 1_000_000_000;
const START_NS: u64 = S / 2;
const FRAMES: u64 = 90;

const SHOW: &str = r#"(
    name: "media output",
    media: (
        outputs: [
            (name: "main", node: "node-01", width: 320, height: 180, rate: "60", display: Fullscreen(0)),
            (name: "split", node: "node-01", width: 320, height: 180, rate: "60", display: Window,
             regions: [
                (name: "left", crop: (0, 0, 160, 180), position: (160, 0)),
                (name: "right", crop: (160, 0, 160, 180), position: (0, 0)),
             ]),
        ],
        layers: [
            (name: "a", output: "main", clip: Some("count"), start: Some(0.5)),
            (name: "b", output: "split", clip: Some("count"), start: Some(0.5)),
        ],
    ),
)"#;

const PREVIEW_SHOW: &str = r#"(
    name: "media preview",
    media: (
        outputs: [(name: "main", node: "node-01", width: 320, height: 180, rate: "60")],
        layers: [(name: "a", output: "main", clip: Some("count"), start: Some(0.5), end: Loop)],
    ),
)"#;

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("outputs") => std::process::exit(child()),
        Ok("preview") => std::process::exit(preview_child()),
        _ => {}
    }
    let dir = std::env::temp_dir().join(format!("rk-media-output-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let clip = dir.join("count.mp4");
    if let Err(e) = write_test_clip(
        &clip,
        FRAMES as u32,
        FrameRate::whole(30),
        W,
        H,
        Codec::H264,
    ) {
        skip::unavailable("media_output", &e.to_string());
        return;
    }
    // The outputs on a screen twice the canvas (fullscreen scales it 2×); the preview in the
    // programmer's 1280×720 window.
    for (scenario, screen) in [("outputs", (2 * W, 2 * H)), ("preview", SCRIPT_WINDOW)] {
        let xvfb = match Xvfb::start(screen) {
            Ok(x) => x,
            Err(e) => {
                skip::unavailable("media_output", &e);
                return;
            }
        };
        let exe = std::env::current_exe().expect("this test's path");
        let status = Command::new(exe)
            .envs(xvfb.env())
            .env(CHILD, scenario)
            .env(CLIP, &clip)
            .status()
            .expect("run the child on Xvfb");
        assert!(
            status.success(),
            "the media {scenario} scenario failed: {status}"
        );
        println!("media {scenario} on screen: ok");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn clip_files() -> MediaClipFiles {
    let clip = PathBuf::from(std::env::var_os(CLIP).expect("clip path"));
    MediaClipFiles {
        files: HashMap::from([("count".to_string(), clip)]),
        dir: None,
    }
}

/// The frame the output `main` chose for the latest refresh, once it shows what it chose.
fn main_frame(world: &World) -> Result<(u64, u64), String> {
    let live = world.resource::<LiveOutputs>();
    let o = live.0.get("main").ok_or("no output main yet")?;
    let l = o.layers.first().ok_or("nothing playing yet")?;
    if l.shown != Some(l.wanted) {
        return Err(format!("frame {} not ready ({:?})", l.wanted, l.shown));
    }
    Ok((o.show_ns, l.wanted))
}

fn preview_child() -> i32 {
    let show = parse_show(PREVIEW_SHOW, "media-preview.ron").expect("show parses");
    // The show time the layer pauses at, and the frame it holds from then on:
    // ⌊(T − 0.5 s) · 30⌋, written out here.
    let paused: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    let pause = {
        let paused = Arc::clone(&paused);
        ScriptStep::Run(
            "pause the layer 300-400 ms ahead".into(),
            Box::new(move |w: &mut World| {
                let (t, _) = main_frame(w)?;
                let at = (t / (S / 10) + 4) * (S / 10);
                let frame = (at - START_NS) * 30 / S;
                w.resource_mut::<MediaShow>().0.command(
                    at,
                    MediaCommand::Pause {
                        layer: "a".into(),
                        at: Some(at as f64 / S as f64),
                    },
                );
                *paused.lock().map_err(|e| e.to_string())? = Some((at, frame));
                Ok(())
            }),
        )
    };
    let held = {
        let paused = Arc::clone(&paused);
        ScriptStep::WaitUntil(
            "the output holds the paused frame".into(),
            std::time::Duration::from_secs(30),
            Box::new(move |w: &mut World| {
                let (at, frame) = paused
                    .lock()
                    .map_err(|e| e.to_string())?
                    .ok_or("not paused")?;
                let (t, f) = main_frame(w)?;
                if t < at + 3 * S / 10 || f != frame {
                    return Err(format!(
                        "show time {t} ns, frame {f} (paused at {at}: {frame})"
                    ));
                }
                Ok(())
            }),
        )
    };
    let read_preview = {
        let paused = Arc::clone(&paused);
        ScriptStep::Run(
            "read the frame from the preview".into(),
            Box::new(move |w: &mut World| {
                let shot = rgb_image(&w.resource::<LastScreenshot>().0)?;
                let layout = w.resource::<MediaPreviewLayout>().clone();
                let rect = layout
                    .0
                    .iter()
                    .find(|(n, _)| n == "main")
                    .map(|(_, r)| *r)
                    .ok_or("the preview drew no picture of main")?;
                if rect.size() != Vec2::new(W as f32, H as f32) {
                    return Err(format!("the preview of main is {:?}, not 1:1", rect.size()));
                }
                let (x0, y0) = (rect.min.x.round() as u32, rect.min.y.round() as u32);
                let mut data = Vec::with_capacity((W * H * 4) as usize);
                for y in 0..H {
                    for x in 0..W {
                        let p = shot.get_pixel(x0 + x, y0 + y);
                        data.extend_from_slice(&[p[0], p[1], p[2], 255]);
                    }
                }
                let read = u64::from(blockcode::read(&data, W, H).map_err(|e| e.to_string())?);
                let (at, frame) = paused
                    .lock()
                    .map_err(|e| e.to_string())?
                    .ok_or("not paused")?;
                println!("stage preview: reads frame {read} (paused at {at} ns on frame {frame})");
                if read != frame {
                    return Err(format!(
                        "the preview shows frame {read}, the layer paused on {frame}"
                    ));
                }
                Ok(())
            }),
        )
    };
    let steps = vec![
        ScriptStep::WaitUntil(
            "the clip plays a second into the show".into(),
            std::time::Duration::from_secs(60),
            Box::new(|w: &mut World| {
                let (t, _) = main_frame(w)?;
                if t < S {
                    return Err(format!("show time {t} ns"));
                }
                Ok(())
            }),
        ),
        pause,
        held,
        ScriptStep::Screenshot(None),
        read_preview,
        ScriptStep::Exit,
    ];
    let mut app = scripted_app(&show, None, UiScript::new(steps));
    app.add_plugins(MediaPlugin).add_plugins(MediaOutputPlugin {
        node: None,
        display: None,
        clips: clip_files(),
    });
    if app.run().is_success() { 0 } else { 1 }
}

/// A screenshot being taken: the image once captured.
type Shot = Arc<Mutex<Option<Image>>>;

#[derive(Resource, Default)]
struct Scenario {
    phase: u8,
    /// (window name, what the output showed when the shot was asked for, the shot).
    shots: Vec<(String, u64, Shot)>,
    failed: Option<String>,
}

fn child() -> i32 {
    let show = parse_show(SHOW, "media-output.ron").expect("show parses");
    rockontrol_show::validate(&show).expect("show is valid");
    let mut app = App::new();
    app.add_plugins(window_plugins("unused", (W, H)).set(WindowPlugin {
        primary_window: None,
        exit_condition: ExitCondition::DontExit,
        ..default()
    }))
    .add_plugins(LogPlugin {
        filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,rockontrol_media=info".into()),
        ..default()
    })
    .add_plugins((EnginePlugin, MediaPlugin))
    .add_plugins(MediaOutputPlugin {
        node: Some("node-01".into()),
        display: None,
        clips: clip_files(),
    })
    .insert_resource(WinitSettings {
        focused_mode: UpdateMode::Continuous,
        unfocused_mode: UpdateMode::Continuous,
    })
    .init_resource::<Scenario>()
    .add_systems(PostUpdate, run_scenario);
    load_show(app.world_mut(), &show);
    let exit = app.run();
    if exit.is_success() { 0 } else { 1 }
}

/// ⌊(t − start) · 30⌋, held at the last frame: written out independently of the crate.
fn expected_frame(show_ns: u64) -> Option<u64> {
    let e = show_ns.checked_sub(START_NS)?;
    Some((u128::from(e) * 30 / u128::from(S)).min(u128::from(FRAMES - 1)) as u64)
}

fn shoot(commands: &mut Commands, window: Entity) -> Shot {
    let slot: Shot = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&slot);
    commands
        .spawn(Screenshot::window(window))
        .observe(move |captured: On<ScreenshotCaptured>| {
            if let Ok(mut s) = sink.lock() {
                *s = Some(captured.image.clone());
            }
        });
    slot
}

/// The screenshot as RGBA8 at the canvas size: a window of `scale` times the canvas (the
/// fullscreen one on the 2× screen) is sampled at each canvas pixel's top-left.
fn canvas_of(image: &Image, scale: u32) -> Result<Rgba, String> {
    let rgb = rgb_image(image)?;
    if rgb.dimensions() != (W * scale, H * scale) {
        return Err(format!(
            "the window is {:?}, not {}×{}",
            rgb.dimensions(),
            W * scale,
            H * scale
        ));
    }
    let mut data = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        for x in 0..W {
            let p = rgb.get_pixel(x * scale, y * scale);
            data.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
    }
    Ok(Rgba {
        width: W,
        height: H,
        data,
    })
}

#[allow(clippy::too_many_arguments, reason = "a Bevy system's parameters")]
fn run_scenario(
    mut commands: Commands,
    mut scenario: ResMut<Scenario>,
    live: Res<LiveOutputs>,
    report: Res<PlaybackReport>,
    outputs: Query<&LiveOutput>,
    windows: Query<&Window>,
    time: Res<Time<Real>>,
    mut exit: MessageWriter<AppExit>,
) {
    if time.elapsed_secs() > 60.0 {
        scenario.failed = Some(format!("timed out in phase {}", scenario.phase));
    }
    let window_of = |name: &str| {
        outputs
            .iter()
            .find(|o| o.output.name == name)
            .and_then(|o| o.window)
    };
    let layer = |name: &str| {
        live.0
            .get(name)
            .and_then(|o| o.layers.first().map(|l| (o.show_ns, l)))
    };
    let s = &mut *scenario;
    match s.phase {
        // Wait for the clip to play, at least a second into the show.
        0 => {
            // (and for the fullscreen window to cover the 2× screen)
            if let (Some((t, l)), Some(w)) = (layer("main"), window_of("main"))
                && t > S
                && l.shown == Some(l.wanted)
                && windows
                    .get(w)
                    .is_ok_and(|w| (w.physical_width(), w.physical_height()) == (2 * W, 2 * H))
            {
                if expected_frame(t) != Some(l.wanted) {
                    s.failed = Some(format!(
                        "show time {t} ns: the output chose frame {}, expected {:?}",
                        l.wanted,
                        expected_frame(t)
                    ));
                } else {
                    info!(
                        show_ns = t,
                        frame = l.wanted,
                        "screenshot of main while playing"
                    );
                    let shot = shoot(&mut commands, w);
                    s.shots.push(("main".into(), l.wanted, shot));
                    s.phase = 1;
                }
            }
        }
        1 => {
            let Some(image) = s.shots[0].2.lock().ok().and_then(|mut i| i.take()) else {
                return;
            };
            let want = s.shots[0].1;
            match canvas_of(&image, 2)
                .and_then(|c| blockcode::read(&c.data, W, H).map_err(|e| e.to_string()))
            {
                Ok(read) if u64::from(read) == want => {
                    println!(
                        "fullscreen output: screenshot reads frame {read}, the frame chosen for that refresh"
                    );
                    // One report: the window's display and measured period, and the same
                    // counts the window drew from, are in the node's playback status.
                    let out = report.outputs.iter().find(|o| o.output == "main");
                    let shown = layer("main").map(|(_, l)| l.stats.shown);
                    let counted = report
                        .layers
                        .iter()
                        .find(|l| l.output == "main")
                        .map(|l| l.shown);
                    match out {
                        Some(o)
                            if o.display.as_deref() == Some("fullscreen 0")
                                && o.display_period_ns.is_some_and(|p| p > 0)
                                && shown.is_some_and(|n| n > 0)
                                && counted == shown =>
                        {
                            println!(
                                "playback report: main on {:?}, frames every {:?} ns, {shown:?} shown",
                                o.display, o.display_period_ns
                            );
                            s.phase = 2;
                        }
                        _ => {
                            s.failed = Some(format!(
                                "the playback report lacks main's display or counts: {out:?}, layer shown {counted:?} vs window {shown:?}"
                            ))
                        }
                    }
                }
                Ok(read) => {
                    s.failed = Some(format!("screenshot reads frame {read}, expected {want}"))
                }
                Err(e) => s.failed = Some(format!("screenshot of main: {e}")),
            }
            if let Some(w) = window_of("main").and_then(|w| windows.get(w).ok()) {
                if !matches!(w.mode, WindowMode::BorderlessFullscreen(_))
                    || (w.physical_width(), w.physical_height()) != (2 * W, 2 * H)
                {
                    s.failed = Some(format!(
                        "main is not fullscreen on the {}×{} screen: {:?}, {}×{}",
                        2 * W,
                        2 * H,
                        w.mode,
                        w.physical_width(),
                        w.physical_height()
                    ));
                }
                println!(
                    "main window: {:?}, {}×{} physical",
                    w.mode,
                    w.physical_width(),
                    w.physical_height()
                );
            }
        }
        // Both hold the last frame: shoot both windows in the same refresh.
        2 => {
            let held = |name| layer(name).is_some_and(|(_, l)| l.shown == Some(FRAMES - 1));
            if held("main")
                && held("split")
                && let (Some(m), Some(sp)) = (window_of("main"), window_of("split"))
            {
                let a = shoot(&mut commands, m);
                let b = shoot(&mut commands, sp);
                s.shots = vec![
                    ("main".into(), FRAMES - 1, a),
                    ("split".into(), FRAMES - 1, b),
                ];
                s.phase = 3;
            }
        }
        3 => {
            let ready = s
                .shots
                .iter()
                .all(|(_, _, shot)| shot.lock().is_ok_and(|i| i.is_some()));
            if !ready {
                return;
            }
            let take = |i: usize, scale: u32| -> Result<Rgba, String> {
                let image = s.shots[i]
                    .2
                    .lock()
                    .ok()
                    .and_then(|mut g| g.take())
                    .ok_or("no shot")?;
                canvas_of(&image, scale)
            };
            let result = take(0, 2).and_then(|main| {
                let split_shot = take(1, 1)?;
                let read = blockcode::read(&main.data, W, H).map_err(|e| e.to_string())?;
                if u64::from(read) != FRAMES - 1 {
                    return Err(format!("main holds frame {read}, expected {}", FRAMES - 1));
                }
                let split = outputs
                    .iter()
                    .find(|o| o.output.name == "split")
                    .ok_or("no split output")?;
                let want = place_regions(&main, &placements(&split.output), W, H);
                let mut off = 0;
                let mut first = None;
                for (i, (a, b)) in split_shot.data.chunks(4).zip(want.data.chunks(4)).enumerate() {
                    if (0..3).any(|c| a[c].abs_diff(b[c]) > 2) {
                        off += 1;
                        first.get_or_insert((i as u32 % W, i as u32 / W, a.to_vec(), b.to_vec()));
                    }
                }
                if off > 0 {
                    return Err(format!(
                        "{off} pixels of the split window differ from the regions' reference, first {first:?}"
                    ));
                }
                println!("regions: the split window equals the canvas with its halves swapped ({W}×{H} pixels)");
                Ok(())
            });
            match result {
                Ok(()) => {
                    exit.write(AppExit::Success);
                    s.phase = 4;
                }
                Err(e) => s.failed = Some(e),
            }
        }
        _ => {}
    }
    if let Some(f) = s.failed.take() {
        eprintln!("FAILED: {f}");
        exit.write(AppExit::error());
        s.phase = 4;
    }
}
