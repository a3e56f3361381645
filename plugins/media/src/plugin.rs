//! [`MediaPlugin`]: media in a live node's ECS, headless (no GPU, no decoder).
//!
//! It keeps the show's [`MediaTimeline`] in step with the engine: the media part of the show
//! (from [`ShowSettings`]) and every cue GO the engine reports ([`EngineEvent`]), stamped with
//! the show time of its tick. Each frame it publishes [`MediaStatus`]: per layer, what plays
//! and how far into the clip the show clock is. Renderers (an output window, the offline
//! render, the stage preview) and heartbeats read that; decoders and the GPU stay outside the
//! ECS.

use bevy::prelude::*;
use rockontrol_engine::{
    EngineEvent, EngineSystems, Event, ShowCueList, ShowPlayback, ShowSettings, ShowTime,
    ShowTimeBase,
};
use rockontrol_show::MediaSetup;

use crate::timeline::{CueFired, MediaTimeline};
use crate::timing::{NANOS_PER_SEC, UNIT_SPEED_PPM, seconds_to_ns};

/// Media playback state in the ECS (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct MediaPlugin;

/// The media plugin's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaSystems {
    /// Cue GOs into the timeline (`FixedUpdate`, after the engine's playback step).
    Cues,
    /// [`MediaStatus`] for the current show time (`Update`).
    Status,
}

/// The show's media timeline: its layers plus the cues that went.
#[derive(Resource, Debug, Clone)]
pub struct MediaShow(pub MediaTimeline);

impl Default for MediaShow {
    fn default() -> Self {
        MediaShow(MediaTimeline::new(MediaSetup::default()))
    }
}

/// What every layer does now, for status, heartbeats and renderers.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct MediaStatus {
    /// Show time the status is for, in nanoseconds.
    pub show_ns: u64,
    pub layers: Vec<LayerStatus>,
}

/// One layer's state in [`MediaStatus`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStatus {
    pub layer: String,
    pub output: String,
    /// The clip playing, if any.
    pub clip: Option<String>,
    /// How far into the clip the show clock is (speed and start offset applied, before any
    /// loop or hold): the frame is this times the clip's rate. `None` before the start.
    pub clip_ns: Option<u64>,
    pub opacity: f32,
}

impl Plugin for MediaPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<MediaShow>()
            .init_resource::<MediaStatus>()
            .configure_sets(
                FixedUpdate,
                MediaSystems::Cues.after(EngineSystems::Playback),
            )
            .add_systems(
                FixedUpdate,
                (
                    load_media.run_if(resource_exists_and_changed::<ShowSettings>),
                    fire_cues,
                )
                    .chain()
                    .in_set(MediaSystems::Cues),
            )
            .add_systems(Update, update_status.in_set(MediaSystems::Status));
    }
}

fn load_media(settings: Res<ShowSettings>, mut show: ResMut<MediaShow>) {
    if show.0.setup() != &settings.media {
        info!(
            outputs = settings.media.outputs.len(),
            layers = settings.media.layers.len(),
            "media: show loaded"
        );
        show.0 = MediaTimeline::new(settings.media.clone());
    }
}

fn fire_cues(
    mut events: MessageReader<EngineEvent>,
    base: Res<ShowTimeBase>,
    playbacks: Query<&ShowPlayback>,
    lists: Query<&ShowCueList>,
    mut show: ResMut<MediaShow>,
) {
    for event in events.read() {
        let Event::Cue {
            playback,
            cue,
            tick,
            ..
        } = &event.0
        else {
            continue;
        };
        let Some(list) = playbacks
            .iter()
            .find(|p| p.0.name == *playback)
            .and_then(|p| lists.iter().find(|l| l.0.name == p.0.cue_list))
        else {
            continue;
        };
        let Some(c) = list.0.cues.iter().find(|c| c.number == *cue) else {
            continue;
        };
        if !show
            .0
            .setup()
            .cues
            .iter()
            .any(|m| m.cue_list == list.0.name && m.cue == *cue)
        {
            continue;
        }
        debug!(playback, %cue, tick, "media: cue went");
        show.0.fire(CueFired {
            at_ns: base.ns_of_tick(*tick),
            cue_list: list.0.name.clone(),
            cue: *cue,
            delay_ns: seconds_to_ns(c.delay),
            fade_ns: seconds_to_ns(c.fade_in),
        });
    }
}

fn update_status(
    time: Res<ShowTime>,
    base: Res<ShowTimeBase>,
    show: Res<MediaShow>,
    mut status: ResMut<MediaStatus>,
) {
    // The show time of the latest computed tick plus the fraction towards the next.
    let tick_ns = base.ns_of_tick(time.tick);
    let show_ns = tick_ns
        + (time.fraction.clamp(0.0, 1.0) * NANOS_PER_SEC as f64 / f64::from(base.rate())) as u64;
    let mut layers = Vec::new();
    for output in &show.0.setup().outputs {
        for l in show.0.at(&output.name, show_ns) {
            let clip_ns = l.clip.as_ref().and_then(|c| {
                let elapsed = show_ns.checked_sub(c.start_ns)?;
                let at_speed =
                    u128::from(elapsed) * u128::from(c.speed_ppm) / u128::from(UNIT_SPEED_PPM);
                Some(
                    c.from_ns
                        .saturating_add(at_speed.min(u128::from(u64::MAX)) as u64),
                )
            });
            layers.push(LayerStatus {
                layer: l.name,
                output: l.output,
                clip: l.clip.map(|c| c.clip),
                clip_ns,
                opacity: l.params.opacity,
            });
        }
    }
    let new = MediaStatus { show_ns, layers };
    if *status != new {
        *status = new;
    }
}

#[cfg(test)]
mod tests {
    use bevy::time::TimeUpdateStrategy;
    use rockontrol_engine::{Command, CommandQueue, EnginePlugin, load_show};

    use super::*;

    const SHOW: &str = r#"(
        name: "media",
        cue_lists: [(name: "main", cues: [(number: 1, delay: 0.5, fade_in: 1.0)])],
        playbacks: [(name: "main", cue_list: "main")],
        media: (
            outputs: [(name: "wall", node: "node-01", width: 64, height: 36, rate: "25")],
            layers: [(name: "bg", output: "wall", opacity: 0.0)],
            cues: [(cue_list: "main", cue: 1, actions: [
                Play(layer: "bg", clip: "intro", rate: Some(2.0)),
                Opacity(layer: "bg", level: 1.0),
            ])],
        ),
    )"#;

    /// A GO at tick 44 (1 s at 44 Hz) plays the clip after the cue's 0.5 s delay, at double
    /// speed, and fades the layer in over the cue's 1 s fade; status follows the show clock.
    #[test]
    fn a_go_starts_the_clip_on_the_show_clock() {
        let show = rockontrol_show::parse_show(SHOW, "media.ron").expect("parses");
        rockontrol_show::validate(&show).expect("valid");
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, EnginePlugin, MediaPlugin))
            .insert_resource(TimeUpdateStrategy::FixedTimesteps(1));
        load_show(app.world_mut(), &show);
        let go: Command = "go main".parse().expect("command");
        app.world_mut().resource_mut::<CommandQueue>().at(44, go);
        app.update(); // starts the fixed clock
        let layer = |app: &App| app.world().resource::<MediaStatus>().layers[0].clone();
        for _ in 0..=44 {
            app.update();
        }
        assert_eq!(
            layer(&app).clip,
            None,
            "tick 44: the cue's delay has not passed"
        );
        // Tick 88 = 2 s: 0.5 s after the clip started, at double speed 1 s into it;
        // half-way through the opacity fade.
        while app.world().resource::<ShowTime>().tick < 88 {
            app.update();
        }
        let status = app.world().resource::<MediaStatus>().clone();
        assert_eq!(status.show_ns, 2 * NANOS_PER_SEC, "{status:?}");
        let l = layer(&app);
        assert_eq!(l.clip.as_deref(), Some("intro"));
        assert_eq!(l.clip_ns, Some(NANOS_PER_SEC));
        assert_eq!(l.opacity, 0.5);
    }
}
