//! Issue 10, defect 3: one command seam. The same action script, with same-tick edge cases,
//! gives byte-identical frames from the engine as `render` and `run` drive it and from a
//! master (whose REST path and queue apply commands through the same seam).
//!
//! Before the seam the master applied commands before the tick's follows and releases and
//! `render`/`run` after them, so a GO on the tick a follow is due, or a release with a 0 s
//! fade, gave different frames.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_dmx::DmxSettings;
use rockontrol_engine::{CaptureSink, Command, CommandQueue, FrameSet, ShowClock, load_show};
use rockontrol_net::MasterPlugin;
use rockontrol_net::auth::Keys;
use rockontrol_net::config::{NodeConfig, Syntax};
use rockontrol_show::parse_show;

/// Dimmer at 1; Wash (dimmer, red, green, blue) at 10..=13 (also used by `tests/cli.rs`).
const SHOW: &str = include_str!("data/seam.ron");

#[path = "data/seam_script.rs"]
mod seam_script;
use seam_script::{LAST_TICK, SCRIPT};

/// DMX output off: the frames are read from the capture.
fn no_output() -> DmxSettings {
    DmxSettings {
        enabled: false,
        ..DmxSettings::default()
    }
}

/// One tick per update, every frame captured.
fn stepped(mut app: App) -> App {
    app.insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .init_resource::<CaptureSink>();
    app
}

/// A standalone show as `run` assembles it ([`rockontrol_net::app::show_app`]); `render`
/// drives the same engine plugin.
fn app() -> App {
    let mut app = rockontrol_net::app::headless();
    rockontrol_net::app::show_app(&mut app, no_output(), None);
    stepped(app)
}

fn script_and_run(mut app: App) -> Vec<Arc<FrameSet>> {
    let show = parse_show(SHOW, "seam.ron").unwrap_or_else(|e| panic!("test show: {e}"));
    load_show(app.world_mut(), &show);
    {
        let mut queue = app.world_mut().resource_mut::<CommandQueue>();
        for (tick, text) in SCRIPT {
            let command: Command = text.parse().unwrap_or_else(|e| panic!("{e}"));
            queue.at(*tick, command);
        }
    }
    app.update(); // starts the fixed clock
    while app.world().resource::<ShowClock>().next_tick <= LAST_TICK {
        app.update();
    }
    let frames = std::mem::take(&mut app.world_mut().resource_mut::<CaptureSink>().frames);
    assert_eq!(
        frames.iter().map(|f| f.tick).collect::<Vec<_>>(),
        (0..=LAST_TICK).collect::<Vec<_>>(),
        "one frame per tick"
    );
    frames
}

/// A master as `rockontrol master` assembles it ([`rockontrol_net::app::master_app`]).
fn master_app() -> App {
    let text = r#"{"role": "master", "node_id": "master-seam", "listen_port": 0,
        "bind": "127.0.0.1", "broadcast_enabled": false}"#;
    let config = match NodeConfig::parse(text, Syntax::Json, "seam master") {
        Ok(NodeConfig::Master(m)) => m,
        other => panic!("master config: {other:?}"),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let mut app = rockontrol_net::app::headless();
    rockontrol_net::app::master_app(
        &mut app,
        MasterPlugin {
            config,
            keys: Keys {
                control: vec!["seam-test-key".into()],
                read_only: Vec::new(),
            },
            listener: std::sync::Mutex::new(Some(listener)),
            tls: None,
        },
        no_output(),
        None,
    );
    stepped(app)
}

/// Slot `address` (1-based) of universe 1 at `tick`.
fn slot(frames: &[Arc<FrameSet>], tick: u64, address: usize) -> u8 {
    frames[tick as usize].universe(1).expect("universe 1")[address - 1]
}

#[test]
fn render_run_and_master_give_the_same_frames_for_same_tick_edge_cases() {
    let engine = script_and_run(app());
    let master = script_and_run(master_app());
    // The documented order (follows first, then commands) on the engine's own path.
    assert_eq!(slot(&engine, 23, 11), 255, "cue 1's red before the follow");
    assert_eq!(
        slot(&engine, 24, 1),
        255,
        "tick 24: the follow fires cue 2, then GO goes on to cue 3, both fading from full"
    );
    assert_eq!(
        slot(&engine, 46, 1),
        51,
        "cue 3 (20%) complete 22 ticks after the GO at 24, cue 2 skipped"
    );
    assert_eq!(
        (slot(&engine, 40, 10), slot(&engine, 40, 13)),
        (255, 0),
        "tick 40: fx released with a 0 s release time is complete on its own tick (issue 11): \
         intensity from main, blue back to its default 0"
    );
    assert_eq!(slot(&engine, 41, 13), 0, "tick 41: fx is off");
    assert_eq!(
        (slot(&engine, 49, 1), slot(&engine, 50, 1)),
        (51, 20),
        "tick 50: a 40% grand master and BACK in one tick: 20% × 40% at once"
    );
    assert_eq!(
        slot(&engine, 94, 1),
        51,
        "BACK faded to cue 2 (50%) over its 1 s, under the 40% grand master"
    );
    for tick in 0..=LAST_TICK {
        let (m, e) = (&master[tick as usize].data, &engine[tick as usize].data);
        let first = m.iter().zip(e.iter()).position(|(a, b)| a != b);
        assert!(
            m == e,
            "tick {tick}: the master's frame differs from render's, first at slot {:?}: {:?} vs {:?}",
            first.map(|i| i + 1),
            first.map(|i| m[i]),
            first.map(|i| e[i]),
        );
    }
}
