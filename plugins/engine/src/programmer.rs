//! The programmer: values a lighting programmer is setting by hand, on top of playback.
//!
//! Consoles keep what the operator is editing in a *programmer* whose values win over every
//! playback (highest priority, latest-takes-precedence on every attribute, intensity
//! included). Recording a cue copies the programmer into a cue list; clearing it hands the
//! fixtures back to playback on the next tick. *Highlight* lights the selected fixtures at
//! full in open white so the programmer can find them on stage, without being recorded.
//!
//! Programmer values replace the merged playback level of their channel right after
//! [`FadeEngine::compute_levels`](crate::FadeEngine::compute_levels) and before grand master and blackout (so a blackout still
//! darkens the stage), through [`FadeEngine::render_with`](crate::FadeEngine::render_with). [`plugin`] renders the engine's
//! frame that way each tick when the programmer holds anything; the tick stays a pure function
//! of the playback state, the programmer and the tick number.

use std::collections::{BTreeMap, BTreeSet};

use bevy::prelude::*;
use rockontrol_show::Attribute;

use crate::compile::{ChannelId, CompiledShow};
use crate::plugin::{EngineSystems, ShowClock, ShowEngine};

/// Hand-set levels per fixture and attribute, which override playback output.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct Programmer {
    /// Normalised levels 0..=1 by `(fixture id, attribute)`.
    values: BTreeMap<(u32, Attribute), f32>,
    /// Fixtures lit by highlight (not recorded).
    highlight: BTreeSet<u32>,
}

impl Programmer {
    /// Sets a fixture attribute to a normalised level (clamped to 0..=1).
    pub fn set(&mut self, fixture: u32, attribute: Attribute, level: f32) {
        self.values
            .insert((fixture, attribute), level.clamp(0.0, 1.0));
    }

    /// The programmer's level of a fixture attribute, if it holds one.
    pub fn get(&self, fixture: u32, attribute: &Attribute) -> Option<f32> {
        self.values.get(&(fixture, attribute.clone())).copied()
    }

    /// Releases one fixture attribute back to playback.
    pub fn unset(&mut self, fixture: u32, attribute: &Attribute) {
        self.values.remove(&(fixture, attribute.clone()));
    }

    /// Every value, ordered by fixture then attribute.
    pub fn values(&self) -> impl Iterator<Item = (u32, &Attribute, f32)> {
        self.values.iter().map(|((f, a), v)| (*f, a, *v))
    }

    /// True when the programmer changes nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.highlight.is_empty()
    }

    /// Releases every value and turns highlight off: playback owns the output again.
    pub fn clear(&mut self) {
        self.values.clear();
        self.highlight.clear();
    }

    /// Lights these fixtures at full in open white (replaces the highlighted set; empty = off).
    pub fn highlight(&mut self, fixtures: impl IntoIterator<Item = u32>) {
        self.highlight = fixtures.into_iter().collect();
    }

    /// The highlighted fixtures.
    pub fn highlighted(&self) -> &BTreeSet<u32> {
        &self.highlight
    }

    /// The channel overrides for `show`: highlight first, then the programmer's values (which
    /// win over highlight). Values for attributes a fixture does not have are skipped.
    pub fn overrides(&self, show: &CompiledShow) -> Vec<(ChannelId, f32)> {
        let mut out = Vec::with_capacity(self.values.len());
        if !self.highlight.is_empty() {
            for (id, channel) in show.channels.iter().enumerate() {
                if !self.highlight.contains(&channel.fixture) {
                    continue;
                }
                let level = match &channel.attribute {
                    Attribute::Intensity
                    | Attribute::Red
                    | Attribute::Green
                    | Attribute::Blue
                    | Attribute::White => 1.0,
                    // Closed-to-open shutters and colour/gobo wheels: their default is open.
                    _ => continue,
                };
                out.push((id as ChannelId, level));
            }
        }
        for ((fixture, attribute), level) in &self.values {
            if let Some(&channel) = show.channel_index.get(&(*fixture, attribute.clone())) {
                out.push((channel, *level));
            }
        }
        out
    }
}

/// Adds the [`Programmer`] resource and applies it to the engine's frame every tick.
///
/// The system runs between [`EngineSystems::Render`] and [`EngineSystems::Publish`]: when the
/// programmer holds values it re-renders the tick with them as overrides, so the published
/// frame (the wire, the preview, captures) carries them. An empty programmer costs nothing.
pub fn plugin(app: &mut App) {
    app.init_resource::<Programmer>().add_systems(
        FixedUpdate,
        apply_programmer
            .after(EngineSystems::Render)
            .before(EngineSystems::Publish),
    );
}

/// A Bevy plugin wrapper around [`plugin`], for apps that add plugins by type.
#[derive(Debug, Default)]
pub struct ProgrammerPlugin;

impl Plugin for ProgrammerPlugin {
    fn build(&self, app: &mut App) {
        plugin(app);
    }
}

/// Re-renders the tick with the programmer's values (ordered against by systems that edit the
/// frame after it, such as a receiver's own output level).
pub fn apply_programmer(
    programmer: Res<Programmer>,
    mut engine: ResMut<ShowEngine>,
    clock: Res<ShowClock>,
) {
    if programmer.is_empty() {
        return;
    }
    let Some(crate::Running {
        fade, state, frame, ..
    }) = engine.running()
    else {
        return;
    };
    let overrides = programmer.overrides(fade.show());
    fade.render_with(state, clock.next_tick, frame, &overrides);
}
