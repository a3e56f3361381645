//! A deterministic test app: each `update()` is exactly one engine tick.

#![allow(
    dead_code,
    reason = "each test file uses a different part of this helper"
)]

use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_engine::{
    CaptureSink, Command, CommandQueue, CommandRejected, EnginePlugin, ShowClock, load_show,
};
use rockontrol_show::{Show, parse_show};

/// Every command the engine refused, in order.
#[derive(Resource, Default)]
pub struct Rejections(pub Vec<CommandRejected>);

pub struct TestShow {
    pub app: App,
}

impl TestShow {
    /// An app running `ron` with `MinimalPlugins`, warmed up so the next `update()` is tick 0.
    pub fn new(ron: &str) -> Self {
        let show: Show = parse_show(ron, "test.ron").unwrap_or_else(|e| panic!("test show: {e}"));
        rockontrol_show::validate(&show).unwrap_or_else(|e| panic!("test show invalid: {e:?}"));
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_plugins(EnginePlugin)
            .insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
            .init_resource::<CaptureSink>()
            .init_resource::<Rejections>()
            .add_systems(
                Update,
                |mut r: MessageReader<CommandRejected>, mut all: ResMut<Rejections>| {
                    all.0.extend(r.read().cloned());
                },
            );
        load_show(app.world_mut(), &show);
        // The first update only records the start time; it runs no fixed step.
        app.update();
        assert_eq!(app.world().resource::<ShowClock>().next_tick, 0);
        // Real time must not leak in: the fixed clock advances only by the strategy.
        let _ = Duration::ZERO;
        TestShow { app }
    }

    /// Queues `command` (text form) for tick `tick`.
    pub fn at(&mut self, tick: u64, command: &str) -> &mut Self {
        let cmd: Command = command.parse().unwrap_or_else(|e| panic!("{e}"));
        self.app
            .world_mut()
            .resource_mut::<CommandQueue>()
            .at(tick, cmd);
        self
    }

    /// Commands refused so far.
    pub fn rejections(&self) -> &[CommandRejected] {
        &self.app.world().resource::<Rejections>().0
    }

    /// Runs until tick `last` has been rendered.
    pub fn run_through(&mut self, last: u64) -> &mut Self {
        while self.app.world().resource::<ShowClock>().next_tick <= last {
            self.app.update();
        }
        self
    }

    /// The slot value (1-based DMX address) of universe `u` at `tick`.
    pub fn dmx(&self, tick: u64, universe: u16, address: usize) -> u8 {
        let capture = self.app.world().resource::<CaptureSink>();
        let frames = capture
            .frames
            .iter()
            .find(|f| f.tick == tick)
            .unwrap_or_else(|| {
                panic!(
                    "tick {tick} was not captured (have {} frames)",
                    capture.frames.len()
                )
            });
        frames
            .universe(universe)
            .unwrap_or_else(|| panic!("no universe {universe}"))[address - 1]
    }

    /// Slot values over a range of ticks.
    pub fn series(
        &self,
        ticks: std::ops::RangeInclusive<u64>,
        universe: u16,
        address: usize,
    ) -> Vec<u8> {
        ticks.map(|t| self.dmx(t, universe, address)).collect()
    }
}

/// Profiles and patch shared by the engine tests:
/// - fixture 1 "Dim": 1-ch dimmer at universe 1 address 1
/// - fixture 2 "Wash": Dimmer, Red, Green, Blue at universe 1 address 10..=13
/// - fixture 3 "Spot": Pan (16-bit at 20/21), Tilt (16-bit at 22/23), Dimmer at 24
pub const PATCH: &str = r#"
    universes: [(id: 1)],
    profiles: [
        (manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
         modes: [(name: "1ch", channels: ["D"])]),
        (manufacturer: "Test", model: "Wash",
         channels: [(name: "Dimmer", attribute: Intensity), (name: "R", attribute: Red),
                    (name: "G", attribute: Green), (name: "B", attribute: Blue)],
         modes: [(name: "4ch", channels: ["Dimmer", "R", "G", "B"])]),
        (manufacturer: "Test", model: "Spot",
         channels: [(name: "Pan", attribute: Pan, fine: "Pan fine"),
                    (name: "Tilt", attribute: Tilt, fine: "Tilt fine", default: 128),
                    (name: "Dimmer", attribute: Intensity)],
         modes: [(name: "5ch", channels: ["Pan", "Pan fine", "Tilt", "Tilt fine", "Dimmer"])]),
    ],
    fixtures: [
        (id: 1, name: "Dim", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1),
        (id: 2, name: "Wash", profile: "Test/Wash", mode: "4ch", universe: 1, address: 10),
        (id: 3, name: "Spot", profile: "Test/Spot", mode: "5ch", universe: 1, address: 20),
    ],
"#;

/// A show with `PATCH`, the given cue lists and playbacks.
pub fn show(cue_lists: &str, playbacks: &str) -> String {
    format!("(name: \"test\", {PATCH} cue_lists: [{cue_lists}], playbacks: [{playbacks}])")
}
