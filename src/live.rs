//! `rockontrol run`: the engine live, with a terminal console.
//!
//! Headless (no window) until the UI plugin lands; the DMX tick runs in `FixedUpdate` at the
//! show's rate, driven by a fast outer loop. Commands come from standard input (one per line;
//! an empty line is GO on the first playback) and from `--at`; a status line prints every
//! second. Ctrl-C (SIGINT) or SIGTERM stops cleanly within one loop period.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Duration;

use std::net::Ipv4Addr;

use bevy::log::LogPlugin;
use bevy::prelude::*;
use rockontrol_dmx::{DmxSettings, DmxStats};
use rockontrol_engine::{
    Command, CommandQueue, CommandRejected, EngineEvent, Event, FrameBus, FrameSet, ShowClock,
    ShowEngine, seconds_to_ticks,
};

use crate::timearg::TimedCommand;

#[derive(Resource)]
struct Console {
    lines: std::sync::Mutex<Receiver<String>>,
    stop: Arc<AtomicBool>,
    stop_at: Option<Duration>,
    last_status: Duration,
    last_status_tick: u64,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per CLI switch group of `run`"
)]
pub fn run(
    path: &Path,
    headless: bool,
    at: &[TimedCommand],
    duration: Option<f64>,
    dmx_interface: Option<Ipv4Addr>,
    capture: Option<&Path>,
    artnet: &crate::artnet_args::ArtNetArgs,
    timecode_args: &crate::timecode_args::TimecodeArgs,
) -> anyhow::Result<ExitCode> {
    let Some(mut show) = crate::load_or_report(path)? else {
        return Ok(ExitCode::FAILURE);
    };
    let timecode = timecode_args.apply(&mut show)?;
    let windowed = crate::windowed::wanted(headless);

    let mut dmx = DmxSettings {
        source_name: rockontrol_dmx::plugin::source_name(&show.name),
        ..DmxSettings::default()
    };
    if let Some(interface) = dmx_interface {
        dmx.interface = interface;
    }
    artnet.apply(&mut dmx);
    if let Some(out) = rockontrol_timecode::artnet_out(&timecode) {
        dmx.artnet_timecode = Some(out);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    }
    let (tx, rx) = sync_channel::<String>(64);
    std::thread::Builder::new()
        .name("console-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })?;

    let mut app = if windowed {
        let mut app = App::new();
        crate::windowed::add_windowed_plugins(&mut app, path);
        app
    } else {
        rockontrol_net::app::headless()
    };
    app.add_plugins(LogPlugin {
        filter: "info".into(),
        ..default()
    });
    app.add_plugins(rockontrol_timecode::TimecodePlugin {
        options: rockontrol_timecode::TimecodeOptions::live(),
    });
    rockontrol_net::app::show_app(&mut app, dmx, Some(&show));
    // Media timeline and status (headless: outputs that show pictures come later).
    app.add_plugins(rockontrol_media::MediaPlugin);
    app.insert_resource(Console {
        lines: std::sync::Mutex::new(rx),
        stop,
        stop_at: duration.map(Duration::from_secs_f64),
        last_status: Duration::ZERO,
        last_status_tick: 0,
    })
    .add_systems(
        Update,
        (read_console, print_events, status_line, stop_when_asked),
    );
    if let Some(path) = capture {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?,
        );
        crate::render::write_csv_header(&mut file)?;
        let frames = app
            .world_mut()
            .resource_mut::<FrameBus>()
            .subscribe(CAPTURE_QUEUE);
        app.insert_resource(Capture {
            frames: std::sync::Mutex::new(frames),
            file,
            line: String::new(),
        })
        .add_systems(Last, write_capture);
    }
    let rate = f64::from(show.tick_rate);
    {
        let mut queue = app.world_mut().resource_mut::<CommandQueue>();
        for timed in at {
            queue.at(seconds_to_ticks(timed.seconds, rate), timed.command.clone());
        }
    }
    println!(
        "running {:?} at {} Hz: {} universes, {} fixtures. Type a command (go PB, back PB, goto PB CUE, release, blackout, gm 50%), Enter = GO {}, Ctrl-C stops.",
        show.name,
        show.tick_rate,
        show.universes.len(),
        show.fixtures.len(),
        show.playbacks
            .first()
            .map(|p| p.name.as_str())
            .unwrap_or("(no playback)")
    );
    let exit = app.run();
    println!("stopped");
    Ok(if exit.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Frames waiting for the capture file (a minute at 44 Hz: a catch-up never drops one).
const CAPTURE_QUEUE: usize = 2640;

/// `--capture`: every frame, as `render` writes it.
#[derive(Resource)]
struct Capture {
    frames: std::sync::Mutex<Receiver<Arc<FrameSet>>>,
    file: std::io::BufWriter<std::fs::File>,
    line: String,
}

fn write_capture(mut capture: ResMut<Capture>, mut exits: MessageReader<AppExit>) {
    use std::io::Write;
    let Capture { frames, file, line } = &mut *capture;
    let Ok(frames) = frames.get_mut() else { return };
    while let Ok(set) = frames.try_recv() {
        for (index, universe) in set.universes.iter().enumerate() {
            line.clear();
            crate::render::format_row(line, &set, index, *universe, crate::render::Format::Csv);
            if let Err(e) = file.write_all(line.as_bytes()) {
                error!("capture: {e}");
            }
        }
    }
    if exits.read().next().is_some()
        && let Err(e) = file.flush()
    {
        error!("capture: {e}");
    }
}

fn read_console(
    console: Res<Console>,
    engine: Res<ShowEngine>,
    mut queue: ResMut<CommandQueue>,
    (base, mut taps, mut commands): (
        Res<rockontrol_engine::ShowTimeBase>,
        ResMut<rockontrol_timecode::TempoInput>,
        Commands,
    ),
) {
    let Ok(lines) = console.lines.lock() else {
        return;
    };
    while let Ok(line) = lines.try_recv() {
        let line = line.trim();
        let first = engine
            .engine
            .as_ref()
            .and_then(|e| e.show().playbacks.first())
            .map(|p| p.name.clone());
        let command = match (line, first) {
            ("" | "g" | "go", Some(pb)) => Ok(Command::Go {
                playback: pb,
                fade: None,
            }),
            ("b" | "back", Some(pb)) => Ok(Command::Back {
                playback: pb,
                fade: None,
            }),
            ("q" | "quit" | "exit", _) => {
                console.stop.store(true, Ordering::SeqCst);
                continue;
            }
            // Tempo: `t`/`tap` on the beat, or `bpm 128` (beat 0 now).
            ("t" | "tap", _) => {
                let now = base.show_ns_at(std::time::Instant::now());
                if let Some(tempo) = taps.tap(now) {
                    println!("tempo {:.1} BPM (tapped)", tempo.bpm());
                    commands.insert_resource(tempo);
                }
                continue;
            }
            (text, _) if text.starts_with("bpm ") => {
                let now = base.show_ns_at(std::time::Instant::now());
                match text[4..]
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|b| rockontrol_timecode::Tempo::new(b, now))
                {
                    Some(tempo) => {
                        println!("tempo {:.1} BPM", tempo.bpm());
                        commands.insert_resource(tempo);
                    }
                    None => {
                        eprintln!("{text:?}: write bpm and a number from 1 to 999, e.g. bpm 128")
                    }
                }
                continue;
            }
            (text, _) => text.parse::<Command>(),
        };
        match command {
            Ok(command) => queue.push(command),
            Err(e) => eprintln!("{e}"),
        }
    }
}

fn print_events(
    mut events: MessageReader<EngineEvent>,
    mut rejected: MessageReader<CommandRejected>,
    engine: Res<ShowEngine>,
) {
    let rate = engine.engine.as_ref().map(|e| e.rate()).unwrap_or(44.0);
    for EngineEvent(event) in events.read() {
        match event {
            Event::Cue {
                playback,
                cue,
                label,
                tick,
                by_follow,
            } => println!(
                "[{:>9.3} s] {playback} → cue {cue} {label:?}{}",
                *tick as f64 / rate,
                if *by_follow { " (follow)" } else { "" }
            ),
            Event::Off { playback, tick } => {
                println!("[{:>9.3} s] {playback} off", *tick as f64 / rate)
            }
            Event::Changed { what, tick } => println!("[{:>9.3} s] {what}", *tick as f64 / rate),
        }
    }
    for r in rejected.read() {
        eprintln!(
            "[{:>9.3} s] {} refused: {}",
            r.tick as f64 / rate,
            r.command,
            r.error
        );
    }
}

fn status_line(
    time: Res<Time<Real>>,
    clock: Res<ShowClock>,
    engine: Res<ShowEngine>,
    dmx: Res<DmxStats>,
    timecode: Option<Res<rockontrol_timecode::TimecodeStatus>>,
    mut console: ResMut<Console>,
) {
    let now = time.elapsed();
    let since = now.saturating_sub(console.last_status);
    if since < Duration::from_secs(1) {
        return;
    }
    // A chased clock may have stepped back.
    let ticks = clock.next_tick.saturating_sub(console.last_status_tick);
    console.last_status = now;
    console.last_status_tick = clock.next_tick;
    let (Some(fade), Some(state)) = (&engine.engine, &engine.state) else {
        return;
    };
    let playbacks: Vec<String> = fade
        .show()
        .playbacks
        .iter()
        .zip(&state.playbacks)
        .map(|(pb, run)| match run.cue {
            Some(c) => format!(
                "{} cue {}",
                pb.name,
                fade.show().lists[pb.list].cues[c].number
            ),
            None => format!("{} off", pb.name),
        })
        .collect();
    let timecode = timecode
        .filter(|t| !t.label.is_empty())
        .map(|t| {
            let chase = t
                .chasing
                .as_ref()
                .map(|c| format!(" chasing {c}: {:?}", t.lock).to_lowercase())
                .unwrap_or_default();
            let beat = t
                .beat
                .map(|(b, _)| format!(" | beat {b} at {:.1} BPM", t.bpm.unwrap_or(0.0)))
                .unwrap_or_default();
            format!(" | TC {}{chase}{beat}", t.label)
        })
        .unwrap_or_default();
    println!(
        "tick {}{timecode} | {:.1} Hz | {} | GM {:.0}%{} | DMX {} streams, {} packets, {} late, {} errors",
        clock.next_tick,
        ticks as f64 / since.as_secs_f64(),
        playbacks.join(" | "),
        state.grand_master * 100.0,
        if state.blackout { " | BLACKOUT" } else { "" },
        dmx.streams,
        dmx.packets,
        dmx.late_frames,
        dmx.send_errors
    );
}

fn stop_when_asked(console: Res<Console>, time: Res<Time<Real>>, mut exit: MessageWriter<AppExit>) {
    let timed_out = console.stop_at.is_some_and(|d| time.elapsed() >= d);
    if console.stop.load(Ordering::SeqCst) || timed_out {
        exit.write(AppExit::Success);
    }
}
