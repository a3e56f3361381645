//! `rockontrol render`: the real engine (the same `EnginePlugin` systems as a live node)
//! driven one fixed tick per `App::update`, with every frame written out. Same input, same
//! bytes: nothing reads a clock.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_engine::{
    CommandQueue, CommandRejected, EngineEvent, EnginePlugin, Event, FrameBus, FrameSet, ShowClock,
    ShowTimeBase, load_show as spawn_show, seconds_to_ticks,
};

use crate::media_render::MediaArgs;
use crate::timearg::TimedCommand;

/// Output format of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `tick,time,universe,1,…,512`, one row per universe per tick.
    Csv,
    /// JSON Lines: `{"tick":0,"time":0.0,"universe":1,"dmx":[…]}` per universe per tick.
    Json,
}

/// Commands the engine refused during a render.
#[derive(Resource, Default)]
struct Refused(Vec<String>);

/// Cue GOs during a render: (tick, playback, cue), for the media timeline.
#[derive(Resource, Default)]
pub(crate) struct CueGos(pub Vec<(u64, String, rockontrol_show::CueNumber)>);

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per CLI switch group of `render`"
)]
pub fn render(
    path: &Path,
    until: f64,
    universes: &[u16],
    format: Format,
    at: &[TimedCommand],
    out: Option<&Path>,
    media: &MediaArgs,
    timecode: &crate::timecode_args::TimecodeArgs,
) -> anyhow::Result<ExitCode> {
    let Some(mut show) = crate::load_or_report(path)? else {
        return Ok(ExitCode::FAILURE);
    };
    if !timecode.outputs.is_empty() || timecode.chase_link.is_some() {
        eprintln!("note: render fires timecode cues; timecode outputs and chase run live only");
    }
    let tc = timecode.apply(&mut show)?;
    if !tc.cues.is_empty() || !tc.follows.is_empty() {
        eprintln!(
            "timecode {} at show time 0: {} timecode cue(s), {} beat follow(s)",
            tc.timecode.label_at_ns(0),
            tc.cues.len(),
            tc.follows.len()
        );
    }
    let unknown: Vec<u16> = universes
        .iter()
        .copied()
        .filter(|u| !show.universes.iter().any(|su| su.id == *u))
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "universe(s) {unknown:?} not in the show; it has {:?}",
            show.universes.iter().map(|u| u.id).collect::<Vec<_>>()
        );
    }
    let rate = f64::from(show.tick_rate);
    let last_tick = seconds_to_ticks(until, rate);

    // Not a role's assembly (`rockontrol_net::app`): offline, no loop, no DMX output and no
    // network; the same `EnginePlugin` a live node runs, stepped one tick per update.
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(EnginePlugin)
        // The same trigger system as live: each tick fires the cues whose label it reaches.
        .add_plugins(rockontrol_timecode::TimecodePlugin {
            options: rockontrol_timecode::TimecodeOptions {
                fire_cues: true,
                ..Default::default()
            },
        })
        .insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .init_resource::<Refused>()
        .init_resource::<CueGos>()
        .add_systems(
            Update,
            |mut r: MessageReader<EngineEvent>, mut gos: ResMut<CueGos>| {
                for e in r.read() {
                    if let Event::Cue {
                        playback,
                        cue,
                        tick,
                        ..
                    } = &e.0
                    {
                        gos.0.push((*tick, playback.clone(), *cue));
                    }
                }
            },
        )
        .add_systems(
            Update,
            |mut r: MessageReader<CommandRejected>, mut all: ResMut<Refused>| {
                all.0.extend(
                    r.read()
                        .map(|r| format!("tick {}: {} refused: {}", r.tick, r.command, r.error)),
                );
            },
        );
    spawn_show(app.world_mut(), &show);
    {
        let mut queue = app.world_mut().resource_mut::<CommandQueue>();
        for timed in at {
            queue.at(seconds_to_ticks(timed.seconds, rate), timed.command.clone());
        }
    }
    let frames = app.world_mut().resource_mut::<FrameBus>().subscribe(256);
    app.update(); // the first update only starts the fixed clock

    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        // A media render writes pictures; DMX only where asked for (--out).
        None if media.png_dir.is_some() => Box::new(std::io::sink()),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    if format == Format::Csv {
        write_csv_header(&mut sink)?;
    }
    let mut line = String::with_capacity(4096);
    while app.world().resource::<ShowClock>().next_tick <= last_tick {
        app.update();
        while let Ok(set) = frames.try_recv() {
            for (index, universe) in set.universes.iter().enumerate() {
                if universes.is_empty() || universes.contains(universe) {
                    line.clear();
                    format_row(&mut line, &set, index, *universe, format);
                    sink.write_all(line.as_bytes())?;
                }
            }
        }
    }
    sink.flush()?;
    for refused in &app.world().resource::<Refused>().0 {
        eprintln!("warning: {refused}");
    }
    if media.png_dir.is_some() {
        let base = ShowTimeBase::new(show.tick_rate, std::time::Instant::now());
        let gos = app
            .world()
            .resource::<CueGos>()
            .0
            .iter()
            .map(|(tick, playback, cue)| (base.ns_of_tick(*tick), playback.as_str(), *cue));
        return crate::media_render::render_media(&show, path, until, gos, media);
    }
    Ok(ExitCode::SUCCESS)
}

/// The CSV header row: `tick,time,universe,1,…,512`.
pub fn write_csv_header(sink: &mut dyn Write) -> std::io::Result<()> {
    write!(sink, "tick,time,universe")?;
    for slot in 1..=512 {
        write!(sink, ",{slot}")?;
    }
    writeln!(sink)
}

/// One row of universe `universe` (at `index` in the frame set).
pub fn format_row(line: &mut String, set: &FrameSet, index: usize, universe: u16, format: Format) {
    use std::fmt::Write as _;
    let slots = &set.data[index * 512..(index + 1) * 512];
    // Show time with 6 decimals: exact enough for any tick rate, and byte-stable.
    let _ = match format {
        Format::Csv => write!(line, "{},{:.6},{}", set.tick, set.time, universe),
        Format::Json => write!(
            line,
            "{{\"tick\":{},\"time\":{:.6},\"universe\":{},\"dmx\":[",
            set.tick, set.time, universe
        ),
    };
    for (i, v) in slots.iter().enumerate() {
        let _ = match format {
            Format::Csv => write!(line, ",{v}"),
            Format::Json if i == 0 => write!(line, "{v}"),
            Format::Json => write!(line, ",{v}"),
        };
    }
    line.push_str(if format == Format::Json { "]}\n" } else { "\n" });
}
