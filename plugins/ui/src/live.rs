//! Per-fixture live values, read from the frame the engine just put on the wire.
//!
//! [`LiveFixtures`] is rebuilt when the engine recompiles (new patch) and its levels refreshed
//! from [`LatestFrame`] every rendered frame, so the panels and the preview show exactly the
//! DMX that went out — not a UI-side model of it.

use bevy::prelude::*;
use rockontrol_engine::compile::{ChannelId, NO_SLOT};
use rockontrol_engine::{LatestFrame, PatchedFixture, ShowEngine, ShowSettings};
use rockontrol_show::{Attribute, FixtureKind, UNIVERSE_SLOTS};

use crate::UiSystems;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<LiveFixtures>().add_systems(
        Update,
        refresh_live
            .in_set(UiSystems::Actions)
            .after(crate::actions::apply_actions),
    );
}

/// One fixture attribute as patched.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureChannel {
    pub attribute: Attribute,
    pub channel: ChannelId,
    /// Flat frame index of the coarse slot (`universe_index * 512 + slot`).
    pub coarse: u32,
    /// Flat frame index of the fine slot, or [`NO_SLOT`].
    pub fine: u32,
    /// Normalised live output level, from the latest frame.
    pub live: f32,
}

impl FixtureChannel {
    /// 8 or 16.
    pub fn bits(&self) -> u8 {
        if self.fine == NO_SLOT { 8 } else { 16 }
    }
}

/// A patched fixture as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureView {
    pub id: u32,
    pub name: String,
    pub entity: Entity,
    pub kind: FixtureKind,
    /// Stage position in metres.
    pub position: Option<(f64, f64)>,
    pub universe: u16,
    pub address: u16,
    pub channels: Vec<FixtureChannel>,
    /// Degrees of pan and tilt travel (moving heads).
    pub pan_range: f64,
    pub tilt_range: f64,
}

impl FixtureView {
    pub fn channel(&self, attribute: &Attribute) -> Option<&FixtureChannel> {
        self.channels.iter().find(|c| &c.attribute == attribute)
    }

    /// Live normalised level of an attribute.
    pub fn live(&self, attribute: &Attribute) -> Option<f32> {
        self.channel(attribute).map(|c| c.live)
    }

    pub fn has(&self, attribute: &Attribute) -> bool {
        self.channel(attribute).is_some()
    }

    /// The light this fixture emits now, linear RGB 0..=1 (colour mix × intensity).
    pub fn output_rgb(&self) -> [f32; 3] {
        let get = |a: Attribute| self.live(&a);
        let mut rgb = match (
            get(Attribute::Red),
            get(Attribute::Green),
            get(Attribute::Blue),
        ) {
            (None, None, None) => match (
                get(Attribute::Cyan),
                get(Attribute::Magenta),
                get(Attribute::Yellow),
            ) {
                (None, None, None) => [1.0, 1.0, 1.0],
                (c, m, y) => [
                    1.0 - c.unwrap_or(0.0),
                    1.0 - m.unwrap_or(0.0),
                    1.0 - y.unwrap_or(0.0),
                ],
            },
            (r, g, b) => [r.unwrap_or(0.0), g.unwrap_or(0.0), b.unwrap_or(0.0)],
        };
        if let Some(w) = get(Attribute::White) {
            rgb = rgb.map(|c| c + w);
        }
        if let Some(a) = get(Attribute::Amber) {
            rgb[0] += a;
            rgb[1] += 0.5 * a;
        }
        let intensity = get(Attribute::Intensity).unwrap_or(1.0);
        rgb.map(|c| (c * intensity).clamp(0.0, 1.0))
    }
}

/// Every fixture with its live levels, and who owns each DMX slot.
#[derive(Resource, Debug, Default)]
pub struct LiveFixtures {
    /// The engine compile generation these tables belong to.
    pub generation: u64,
    pub fixtures: Vec<FixtureView>,
    /// Show universe ids in frame order.
    pub universes: Vec<u16>,
    /// Owner fixture id of every flat frame slot.
    pub slot_owner: Vec<Option<u32>>,
    /// The latest frame's slots and tick.
    pub frame: Vec<u8>,
    pub tick: u64,
}

impl LiveFixtures {
    pub fn fixture(&self, id: u32) -> Option<&FixtureView> {
        self.fixtures.iter().find(|f| f.id == id)
    }

    /// The 512 slots of a show universe in the latest frame.
    pub fn universe_slots(&self, id: u16) -> Option<&[u8]> {
        let index = self.universes.iter().position(|u| *u == id)?;
        self.frame
            .get(index * UNIVERSE_SLOTS..(index + 1) * UNIVERSE_SLOTS)
    }
}

fn refresh_live(
    engine: Res<ShowEngine>,
    settings: Option<Res<ShowSettings>>,
    latest: Res<LatestFrame>,
    fixtures: Query<(Entity, Ref<PatchedFixture>)>,
    mut live: ResMut<LiveFixtures>,
) {
    let Some(fade) = &engine.engine else {
        return;
    };
    let patch_changed = fixtures.iter().any(|(_, f)| f.is_changed());
    if live.generation != engine.generation || patch_changed || live.fixtures.is_empty() {
        let show = fade.show();
        let mut views: Vec<FixtureView> = Vec::new();
        let mut sorted: Vec<(Entity, &PatchedFixture)> =
            fixtures.iter().map(|(e, f)| (e, f.into_inner())).collect();
        sorted.sort_by_key(|(_, f)| f.0.id);
        for (entity, fixture) in sorted {
            let f = &fixture.0;
            let profile = settings
                .as_ref()
                .and_then(|s| s.profiles.iter().find(|p| p.reference() == f.profile));
            let channels = show
                .channels
                .iter()
                .enumerate()
                .filter(|(_, c)| c.fixture == f.id)
                .map(|(i, c)| FixtureChannel {
                    attribute: c.attribute.clone(),
                    channel: i as ChannelId,
                    coarse: c.coarse,
                    fine: c.fine,
                    live: 0.0,
                })
                .collect();
            views.push(FixtureView {
                id: f.id,
                name: f.name.clone(),
                entity,
                kind: profile.map(|p| p.kind).unwrap_or_default(),
                position: f.position,
                universe: f.universe,
                address: f.address,
                channels,
                pan_range: profile
                    .and_then(|p| p.physical.as_ref())
                    .and_then(|p| p.pan_range)
                    .unwrap_or(540.0),
                tilt_range: profile
                    .and_then(|p| p.physical.as_ref())
                    .and_then(|p| p.tilt_range)
                    .unwrap_or(270.0),
            });
        }
        let mut owner = vec![None; show.frame_len()];
        for c in &show.channels {
            for slot in [c.coarse, c.fine] {
                if let Some(o) = owner.get_mut(slot as usize) {
                    *o = Some(c.fixture);
                }
            }
        }
        live.fixtures = views;
        live.slot_owner = owner;
        live.universes = show.universes.clone();
        live.generation = engine.generation;
    }
    let Some(frame) = &latest.0 else {
        return;
    };
    if frame.tick == live.tick && !live.frame.is_empty() && !latest.is_changed() {
        return;
    }
    let live = &mut *live;
    live.tick = frame.tick;
    live.frame.clear();
    live.frame.extend_from_slice(&frame.data);
    for fixture in &mut live.fixtures {
        for c in &mut fixture.channels {
            let coarse = frame.data.get(c.coarse as usize).copied().unwrap_or(0);
            c.live = if c.fine == NO_SLOT {
                f32::from(coarse) / 255.0
            } else {
                let fine = frame.data.get(c.fine as usize).copied().unwrap_or(0);
                f32::from(u16::from(coarse) << 8 | u16::from(fine)) / 65535.0
            };
        }
    }
}
