//! One app assembly per role: what a standalone show, a master and a receiver are made of.
//!
//! The caller picks the loop ([`headless`], or a window the UI crate adds) and anything that
//! belongs to the process (logging, a stop flag, the restart hook); these functions add the
//! rest, the same way for `rockontrol run`, `master` and `receiver`, the UI's scenes and tests:
//! the engine, DMX output with the given settings, the role's network plugin, then the show.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use rockontrol_dmx::{DmxPlugin, DmxSettings};
use rockontrol_engine::{EnginePlugin, load_show};
use rockontrol_show::Show;

use crate::{MasterPlugin, ReceiverPlugin};

/// Outer loop period of a headless app: sets how evenly `FixedUpdate` ticks are spaced in
/// wall time.
pub const LOOP_PERIOD: Duration = Duration::from_millis(2);

/// The most wall time one frame may catch up: ticks keep up with wall time after a stall
/// (up to this) instead of being dropped.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(5);

/// A headless app on a [`LOOP_PERIOD`] loop (no window, no rendering).
pub fn headless() -> App {
    let mut app = App::new();
    add_headless_loop(&mut app);
    app
}

/// Makes `app` headless: `MinimalPlugins` on a [`LOOP_PERIOD`] loop.
pub fn add_headless_loop(app: &mut App) {
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(LOOP_PERIOD)));
}

/// The engine and DMX output (with `dmx`) on `app`, running `show` if given (`None`: the
/// caller loaded one already).
pub fn show_app(app: &mut App, dmx: DmxSettings, show: Option<&Show>) {
    add_engine_and_output(app, dmx);
    if let Some(show) = show {
        load_show(app.world_mut(), show);
    }
}

/// A master: [`show_app`] and [`MasterPlugin`], running `show` if given.
pub fn master_app(app: &mut App, master: MasterPlugin, dmx: DmxSettings, show: Option<&Show>) {
    add_engine_and_output(app, dmx);
    app.add_plugins(master);
    if let Some(show) = show {
        load_show(app.world_mut(), show);
    }
}

/// A receiver: [`show_app`] and [`ReceiverPlugin`], running `show` if given (its sACN sent to
/// the configured `dmx_destination`, as the master's shows are) until the master's arrives.
pub fn receiver_app(
    app: &mut App,
    receiver: ReceiverPlugin,
    dmx: DmxSettings,
    show: Option<&Show>,
) {
    add_engine_and_output(app, dmx);
    let destination = receiver.config.dmx_destination.clone();
    app.add_plugins(receiver);
    if let Some(show) = show {
        let mut show = show.clone();
        if let Some(dest) = &destination {
            crate::receiver::redirect_sacn(&mut show, dest);
        }
        load_show(app.world_mut(), &show);
    }
}

fn add_engine_and_output(app: &mut App, dmx: DmxSettings) {
    if !app.is_plugin_added::<EnginePlugin>() {
        app.add_plugins(EnginePlugin);
    }
    // Every node registers the replicated tempo, so masters and receivers agree on the
    // protocol hash; the binary adds it first with the role's options (cues, outputs, chase).
    if !app.is_plugin_added::<rockontrol_timecode::TimecodePlugin>() {
        app.add_plugins(rockontrol_timecode::TimecodePlugin::default());
    }
    app.add_plugins(DmxPlugin).insert_resource(dmx);
    app.world_mut()
        .resource_mut::<Time<Virtual>>()
        .set_max_delta(MAX_CATCH_UP);
}
