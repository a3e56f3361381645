//! The real windowed app, driven as a user would: select a fixture, set it to red at full,
//! record a cue, clear, GO — then check the engine's output frame and the pixels of a
//! screenshot of the live preview (the fixture drawn red), against a reference PNG.
//!
//! Runs on a private Xvfb with Mesa's lavapipe (no GPU needed): the test re-runs itself as a
//! child process with `DISPLAY` and the Vulkan driver set. `UPDATE_REFERENCE=1` rewrites the
//! reference image.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bevy::prelude::*;
use rockontrol_engine::{LatestFrame, Programmer, ShowEngine};
use rockontrol_show::{Attribute, CueNumber, parse_show};
use rockontrol_ui::actions::RecordMode;
use rockontrol_ui::live::LiveFixtures;
use rockontrol_ui::preview::{StageCamera, StageViewport, stage_position};
use rockontrol_ui::script::{
    FrameTimes, LastScreenshot, ScriptStep, UiScript, rerun_on_xvfb, rgb_image, scripted_app,
};
use rockontrol_ui::{UiAction, UiState};

const DEMO: &str = include_str!("../../../shows/demo.ron");
const CHILD: &str = "ROCKONTROL_UI_TEST_CHILD";

fn main() {
    if std::env::var_os(CHILD).is_none() {
        let status = rerun_on_xvfb(&[(CHILD, "1")]).unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "the windowed scenario failed: {status}");
        println!("windowed scenario: ok");
        return;
    }
    let exit = scripted_app(&demo(), None, UiScript::new(red_par_scenario())).run();
    std::process::exit(if exit.is_success() { 0 } else { 1 });
}

fn demo() -> rockontrol_show::Show {
    parse_show(DEMO, "demo.ron").expect("demo show parses")
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-test")
}

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/preview_red_par.png")
}

fn check(
    name: &str,
    f: impl FnMut(&mut World) -> Result<(), String> + Send + Sync + 'static,
) -> ScriptStep {
    ScriptStep::Run(name.to_string(), Box::new(f))
}

fn set(attribute: Attribute, level: f32) -> ScriptStep {
    ScriptStep::Act(UiAction::Set { attribute, level })
}

/// Universe 1, 1-based address, in the frame that went out.
fn dmx(world: &World, address: usize) -> Result<u8, String> {
    let frame = world
        .resource::<LatestFrame>()
        .0
        .clone()
        .ok_or("no frame yet")?;
    let slots = frame.universe(1).ok_or("no universe 1")?;
    Ok(slots[address - 1])
}

fn red_par_scenario() -> Vec<ScriptStep> {
    vec![
        ScriptStep::WaitTicks(2),
        ScriptStep::Act(UiAction::Select {
            fixtures: vec![101],
            add: false,
        }),
        set(Attribute::Intensity, 1.0),
        set(Attribute::Red, 1.0),
        set(Attribute::Green, 0.0),
        set(Attribute::Blue, 0.0),
        set(Attribute::White, 0.0),
        ScriptStep::WaitTicks(2),
        check("the programmer drives the output", |w| {
            let got: Vec<u8> = (1..=5).map(|a| dmx(w, a)).collect::<Result<_, _>>()?;
            (got == [255, 255, 0, 0, 0]).then_some(()).ok_or(format!(
                "Par 1 dimmer,R,G,B,W: expected [255,255,0,0,0], got {got:?}"
            ))
        }),
        ScriptStep::Act(UiAction::Record {
            list: "main".into(),
            cue: CueNumber::parse("0.5"),
            mode: RecordMode::New,
        }),
        ScriptStep::Act(UiAction::ClearProgrammer),
        ScriptStep::Act(UiAction::Select {
            fixtures: vec![],
            add: false,
        }),
        ScriptStep::WaitTicks(2),
        check(
            "cleared: dark again, cue 0.5 recorded, show marked unsaved",
            |w| {
                if !w.resource::<Programmer>().is_empty() {
                    return Err("programmer not empty".into());
                }
                let level = dmx(w, 1)?;
                if level != 0 {
                    return Err(format!("Par 1 dimmer: expected 0 before GO, got {level}"));
                }
                if !w.resource::<UiState>().dirty {
                    return Err("recording did not mark the show unsaved".into());
                }
                Ok(())
            },
        ),
        ScriptStep::Act(UiAction::Engine("go main".parse().expect("command"))),
        ScriptStep::WaitTicks(3),
        ScriptStep::WaitFrames(4),
        check("GO: cue 0.5 puts Par 1 at full red on the wire", |w| {
            let got: Vec<u8> = (1..=5).map(|a| dmx(w, a)).collect::<Result<_, _>>()?;
            if got != [255, 255, 0, 0, 0] {
                return Err(format!(
                    "Par 1 dimmer,R,G,B,W: expected [255,255,0,0,0], got {got:?}"
                ));
            }
            let par2 = dmx(w, 7)?;
            if par2 != 0 {
                return Err(format!("Par 2 dimmer: expected 0, got {par2}"));
            }
            let engine = w.resource::<ShowEngine>();
            let (Some(fade), Some(state)) = (&engine.engine, &engine.state) else {
                return Err("no engine".into());
            };
            let pb = &fade.show().playbacks[0];
            let cue = state.playbacks[0]
                .cue
                .map(|c| fade.show().lists[pb.list].cues[c].number);
            (cue == CueNumber::parse("0.5"))
                .then_some(())
                .ok_or(format!("main: expected cue 0.5, is on {cue:?}"))
        }),
        ScriptStep::Screenshot(Some(out_dir().join("programmer_red_par.png"))),
        check("the preview draws Par 1 red and Par 2 dark", check_pixels),
        // The DMX tick keeps the show's rate while the window renders (chase running).
        ScriptStep::Act(UiAction::Engine("go chase".parse().expect("command"))),
        ScriptStep::Measure(Duration::from_secs(3)),
        check("the tick stays at 44 Hz while the UI renders", |w| {
            let times = w.resource::<FrameTimes>();
            eprintln!("windowed test: {}", times.report());
            let rate = times.tick_rate();
            ((rate - 44.0).abs() <= 1.0)
                .then_some(())
                .ok_or(format!("DMX tick at {rate:.2} Hz, expected 44 ± 1"))
        }),
        ScriptStep::Exit,
    ]
}

/// Window pixel of a fixture's centre.
fn fixture_pixel(w: &mut World, id: u32) -> Result<UVec2, String> {
    let pos = {
        let live = w.resource::<LiveFixtures>();
        let f = live.fixture(id).ok_or(format!("no fixture {id}"))?;
        stage_position(f).ok_or("fixture has no position")?
    };
    let mut q = w.query_filtered::<(&Camera, &GlobalTransform), With<StageCamera>>();
    let (camera, transform) = q.single(w).map_err(|e| e.to_string())?;
    let p = camera
        .world_to_viewport(transform, pos.extend(0.0))
        .map_err(|e| format!("{e:?}"))?;
    Ok(p.round().as_uvec2())
}

fn check_pixels(w: &mut World) -> Result<(), String> {
    let shot = rgb_image(&w.resource::<LastScreenshot>().0)?;
    let par1 = fixture_pixel(w, 101)?;
    let par2 = fixture_pixel(w, 102)?;
    let p1 = shot.get_pixel(par1.x, par1.y).0;
    let p2 = shot.get_pixel(par2.x, par2.y).0;
    if !(p1[0] > 200 && p1[1] < 60 && p1[2] < 60) {
        return Err(format!("Par 1 at {par1}: expected red, pixel is {p1:?}"));
    }
    if p2.iter().any(|c| *c > 80) {
        return Err(format!("Par 2 at {par2}: expected dark, pixel is {p2:?}"));
    }
    // The stage area against the reference image, with a tolerance for rasteriser drift.
    let rect = w.resource::<StageViewport>().0;
    let (x, y) = (rect.min.x.max(0.0) as u32, rect.min.y.max(0.0) as u32);
    let (wd, ht) = (rect.width() as u32, rect.height() as u32);
    let stage = image::imageops::crop_imm(&shot, x, y, wd, ht).to_image();
    let path = reference();
    if std::env::var_os("UPDATE_REFERENCE").is_some() || !path.exists() {
        stage
            .save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote reference {}", path.display());
        return Ok(());
    }
    let expected = image::open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgb8();
    if expected.dimensions() != stage.dimensions() {
        return Err(format!(
            "stage area is {:?}, reference is {:?}",
            stage.dimensions(),
            expected.dimensions()
        ));
    }
    let mut off = 0usize;
    let mut total = 0u64;
    for (a, b) in stage.pixels().zip(expected.pixels()) {
        let d =
            a.0.iter()
                .zip(b.0)
                .map(|(x, y)| x.abs_diff(y))
                .max()
                .unwrap_or(0);
        total += u64::from(d);
        if d > 40 {
            off += 1;
        }
    }
    let n = (stage.width() * stage.height()) as usize;
    let mean = total as f64 / n as f64;
    let _ = stage.save(out_dir().join("stage_actual.png"));
    if off * 200 > n || mean > 2.0 {
        return Err(format!(
            "stage differs from {}: {off} of {n} pixels off by > 40, mean difference {mean:.2} (actual saved in target/ui-test)",
            path.display()
        ));
    }
    eprintln!("stage matches the reference: {off} of {n} pixels off by > 40, mean {mean:.2}");
    Ok(())
}
