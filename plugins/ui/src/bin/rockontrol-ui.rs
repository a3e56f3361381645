//! `rockontrol-ui`: scripted runs of the windowed programmer, master and receiver views.
//!
//! ```text
//! rockontrol-ui screenshots [--out docs/] [--show shows/demo.ron]
//! rockontrol-ui bench [--seconds 20] [--show shows/demo.ron] [--master [--page nodes]]
//! ```
//! `screenshots` writes the README images (programmer with preview, universe view, the
//! master's node view, the receiver view) through the same scripted path as the UI tests —
//! the node views run exactly the steps and checks of `tests/nodes_windowed.rs`, one child
//! process per window; `bench` measures frame time at 1280×720 with the show running and
//! checks the DMX tick stays at the show's rate (`--master`: the master window, with its
//! network and two receivers linked, on the programmer page with the preview, or with
//! `--page nodes` on the node view). Without a
//! display both run themselves on a private Xvfb with Mesa's lavapipe.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bevy::prelude::*;
use rockontrol_engine::{Command, ShowEngine};
use rockontrol_show::{CueNumber, load_show};
use rockontrol_ui::UiAction;
use rockontrol_ui::nodes::UiPage;
use rockontrol_ui::panels::{BottomView, PanelState};
use rockontrol_ui::scenes::{master_scene, master_steps, receiver_scene, receiver_steps};
use rockontrol_ui::script::{
    FrameTimes, ScriptStep, UiScript, has_display, rerun_on_xvfb, scripted_app,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: rockontrol-ui screenshots [--out DIR] [--show SHOW.ron]\n       rockontrol-ui bench [--seconds N] [--show SHOW.ron] [--master [--page nodes]]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first().cloned() else {
        return usage();
    };
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let show_path = PathBuf::from(option("--show").unwrap_or_else(|| "shows/demo.ron".into()));
    if !matches!(command.as_str(), "screenshots" | "bench" | "scene") {
        return usage();
    }
    if !has_display() {
        return match rerun_on_xvfb(&[]) {
            Ok(status) if status.success() => ExitCode::SUCCESS,
            Ok(status) => {
                eprintln!("failed: {status}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let show = match load_show(&show_path) {
        Ok(show) => show,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let out = PathBuf::from(option("--out").unwrap_or_else(|| "docs".into()));
    let exit = match command.as_str() {
        "screenshots" => {
            // One window per process: the programmer here, the node views in children.
            let exit = scripted_app(
                &show,
                Some(show_path),
                UiScript::new(screenshot_steps(&out)),
            )
            .run();
            if !exit.is_success() {
                return ExitCode::FAILURE;
            }
            for scene in ["master", "receiver"] {
                let status = std::env::current_exe().and_then(|exe| {
                    std::process::Command::new(exe)
                        .args(["scene", scene])
                        .args(args.iter().skip(1))
                        .status()
                });
                match status {
                    Ok(s) if s.success() => {}
                    other => {
                        eprintln!("the {scene} scene failed: {other:?}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            return ExitCode::SUCCESS;
        }
        "scene" => match args.get(1).map(String::as_str) {
            Some("master") => {
                master_scene(&show, None, UiScript::new(master_steps(Some(&out)))).run()
            }
            Some("receiver") => {
                receiver_scene(&show, UiScript::new(receiver_steps(Some(&out)))).run()
            }
            _ => return usage(),
        },
        _ => {
            let seconds: f64 = option("--seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(20.0);
            let nodes_page = option("--page").as_deref() == Some("nodes");
            let script = UiScript::new(bench_steps(seconds, nodes_page));
            if args.iter().any(|a| a == "--master") {
                master_scene(&show, Some(show_path), script).run()
            } else {
                scripted_app(&show, Some(show_path), script).run()
            }
        }
    };
    if exit.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn goto(cue: &str) -> ScriptStep {
    ScriptStep::Act(UiAction::Engine(Command::Goto {
        playback: "main".into(),
        cue: CueNumber::parse(cue).unwrap_or(CueNumber(1000)),
        fade: Some(0.0),
    }))
}

fn bottom(view: BottomView) -> ScriptStep {
    ScriptStep::Run(
        format!("show the {view:?} view"),
        Box::new(move |w: &mut World| {
            w.resource_mut::<PanelState>().bottom = view;
            Ok(())
        }),
    )
}

/// The README images: the demo's "spots fan out" look with the spots selected.
fn screenshot_steps(out: &std::path::Path) -> Vec<ScriptStep> {
    vec![
        ScriptStep::WaitTicks(2),
        goto("3.5"),
        ScriptStep::Act(UiAction::SelectGroup("Spots".into())),
        ScriptStep::Act(UiAction::SetFixture {
            fixture: 204,
            attribute: rockontrol_show::Attribute::Intensity,
            level: 1.0,
        }),
        ScriptStep::Wait(Duration::from_millis(1500)),
        ScriptStep::WaitFrames(5),
        ScriptStep::Screenshot(Some(out.join("programmer.png"))),
        bottom(BottomView::Universe),
        ScriptStep::Act(UiAction::SelectGroup("Pars".into())),
        ScriptStep::WaitFrames(5),
        ScriptStep::Screenshot(Some(out.join("universe.png"))),
        ScriptStep::Exit,
    ]
}

/// The frame-time benchmark: both playbacks running (fades and a looped chase), the
/// preview and panels open, measured after a warm-up.
fn bench_steps(seconds: f64, nodes_page: bool) -> Vec<ScriptStep> {
    vec![
        ScriptStep::WaitTicks(2),
        ScriptStep::Run(
            "open the page".into(),
            Box::new(move |w: &mut World| {
                if let Some(mut page) = w.get_resource_mut::<UiPage>() {
                    *page = if nodes_page {
                        UiPage::Nodes
                    } else {
                        UiPage::Programmer
                    };
                }
                Ok(())
            }),
        ),
        ScriptStep::Act(UiAction::Engine("go main".parse().expect("command"))),
        ScriptStep::Act(UiAction::Engine("go chase".parse().expect("command"))),
        ScriptStep::Act(UiAction::SelectGroup("Pars".into())),
        ScriptStep::Wait(Duration::from_secs(3)),
        ScriptStep::Measure(Duration::from_secs_f64(seconds)),
        ScriptStep::Run(
            "report".into(),
            Box::new(|w: &mut World| {
                let times = w.resource::<FrameTimes>().clone();
                let rate = w
                    .resource::<ShowEngine>()
                    .engine
                    .as_ref()
                    .map_or(44.0, |e| e.rate());
                let window = w
                    .query::<&Window>()
                    .iter(w)
                    .next()
                    .map(|win| (win.physical_width(), win.physical_height()))
                    .unwrap_or_default();
                let role = if w.get_resource::<UiPage>() == Some(&UiPage::Nodes) {
                    "master window on the Nodes page, 2 receivers linked"
                } else if w.contains_resource::<rockontrol_net::MasterNet>() {
                    "master window, 2 receivers linked"
                } else {
                    "programmer window"
                };
                // The receivers' own DMX output rate, from their latest heartbeats.
                if let Some(net) = w.get_resource::<rockontrol_net::MasterNet>() {
                    let reg = net.shared.registry();
                    for n in reg.nodes() {
                        println!(
                            "  node {} ({:?}): DMX out {:.1} frames/s, tick {}",
                            n.node_id(),
                            n.state(),
                            n.metrics().dmx_fps,
                            n.metrics().tick
                        );
                    }
                }
                println!(
                    "rockontrol-ui bench ({role}, {}x{}): {}",
                    window.0,
                    window.1,
                    times.report()
                );
                let tick = times.tick_rate();
                if (tick - rate).abs() > 0.02 * rate {
                    return Err(format!(
                        "the DMX tick ran at {tick:.2} Hz while the UI rendered; expected {rate} Hz"
                    ));
                }
                Ok(())
            }),
        ),
        ScriptStep::Exit,
    ]
}
