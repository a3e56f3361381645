//! Compiling a [`Show`] into flat tables the fade engine can run through every tick.
//!
//! The show model is made for people (names, groups, tracking cues); the engine wants
//! indices. Every patched fixture attribute becomes one *channel* (one level, written to one
//! coarse slot and maybe a fine slot); every cue list gets the set of channels it ever
//! touches as its *lanes*, and every cue its tracked target per lane, computed once here.

use std::collections::{BTreeMap, HashMap};

use rockontrol_show::{
    Attribute, ByteRole, Cue, CueList, Fixture, Follow, Show, Target, UNIVERSE_SLOTS, Value,
};

/// Index of a channel in [`CompiledShow::channels`].
pub type ChannelId = u32;

/// Marks "no fine slot" in [`ChannelInfo::fine`].
pub const NO_SLOT: u32 = u32::MAX;

/// Level value meaning "this lane is not set by the cue list (yet)".
pub(crate) const UNSET: f32 = f32::NAN;

/// One patched fixture attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    pub fixture: u32,
    pub attribute: Attribute,
    /// Index of the coarse slot in the flat frame buffer (`universe_index * 512 + slot`).
    pub coarse: u32,
    /// Index of the fine slot, or [`NO_SLOT`] for an 8-bit channel.
    pub fine: u32,
    /// Intensity-like: merged HTP and scaled by masters, grand master and blackout.
    pub htp: bool,
    /// Level when nothing drives it.
    pub default: f32,
}

impl ChannelInfo {
    /// 8 or 16.
    pub fn bits(&self) -> u8 {
        if self.fine == NO_SLOT { 8 } else { 16 }
    }
}

/// A cue as the engine runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledCue {
    pub number: rockontrol_show::CueNumber,
    pub label: String,
    pub fade_in: f64,
    pub fade_out: f64,
    pub delay: f64,
    pub follow: Option<Follow>,
    /// Every lane with a tracked value counts as moved by this cue (see [`Cue::assert`]).
    pub assert: bool,
    /// Tracked target level per lane after this cue (`NaN`: not set by cues so far).
    pub tracked: Vec<f32>,
}

/// A cue list as the engine runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledList {
    pub name: String,
    pub looped: bool,
    /// The channel each lane drives.
    pub lanes: Vec<ChannelId>,
    pub cues: Vec<CompiledCue>,
}

impl CompiledList {
    /// Index of the cue with this number.
    pub fn cue_index(&self, number: rockontrol_show::CueNumber) -> Option<usize> {
        self.cues.iter().position(|c| c.number == number)
    }
}

/// A playback as the engine runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPlayback {
    pub name: String,
    /// Index into [`CompiledShow::lists`].
    pub list: usize,
    pub master: f64,
    /// Seconds a release fades this playback's values back to what lies beneath.
    pub release_time: f64,
}

/// A show reduced to flat tables.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledShow {
    pub name: String,
    pub tick_rate: u32,
    pub grand_master: f64,
    /// Show universe ids in frame-buffer order.
    pub universes: Vec<u16>,
    pub channels: Vec<ChannelInfo>,
    pub lists: Vec<CompiledList>,
    pub playbacks: Vec<CompiledPlayback>,
    /// `(fixture id, attribute)` → channel.
    pub channel_index: HashMap<(u32, Attribute), ChannelId>,
    /// The show's effects, in its order (commands name them; the state holds indices).
    pub effects: Vec<crate::effect::CompiledEffect>,
}

/// A show that cannot be compiled (it failed validation).
#[derive(Debug, thiserror::Error)]
#[error("show {name:?} is not valid:\n  - {}", .errors.join("\n  - "))]
pub struct CompileError {
    pub name: String,
    pub errors: Vec<String>,
}

impl CompiledShow {
    /// Validates and compiles a show.
    pub fn compile(show: &Show) -> Result<Self, CompileError> {
        if let Err(errors) = rockontrol_show::validate(show) {
            return Err(CompileError {
                name: show.name.clone(),
                errors: errors.iter().map(|e| e.to_string()).collect(),
            });
        }
        let universes: Vec<u16> = show.universes.iter().map(|u| u.id).collect();
        let universe_index: HashMap<u16, u32> = universes
            .iter()
            .enumerate()
            .map(|(i, u)| (*u, i as u32))
            .collect();

        let mut channels = Vec::new();
        let mut channel_index = HashMap::new();
        for fixture in &show.fixtures {
            patch_fixture(
                show,
                fixture,
                &universe_index,
                &mut channels,
                &mut channel_index,
            );
        }

        let groups: HashMap<&str, &[u32]> = show
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.fixtures.as_slice()))
            .collect();
        let lists: Vec<CompiledList> = show
            .cue_lists
            .iter()
            .map(|l| compile_list(l, &groups, &channels, &channel_index))
            .collect();
        let playbacks = show
            .playbacks
            .iter()
            .filter_map(|p| {
                let list = show.cue_lists.iter().position(|l| l.name == p.cue_list)?;
                Some(CompiledPlayback {
                    name: p.name.clone(),
                    list,
                    master: p.master,
                    release_time: p.release_time,
                })
            })
            .collect();
        let effects = show
            .effects
            .iter()
            .map(|e| crate::effect::CompiledEffect {
                name: e.name.clone(),
                // Validation made sure every fixture has the attribute.
                channels: e
                    .fixtures
                    .iter()
                    .filter_map(|f| channel_index.get(&(*f, e.attribute.clone())).copied())
                    .collect(),
                waveform: e.waveform,
                min: e.min as f32,
                max: e.max as f32,
                speed: e.speed,
                spread: e.spread,
            })
            .collect();
        Ok(CompiledShow {
            effects,
            name: show.name.clone(),
            tick_rate: show.tick_rate,
            grand_master: show.grand_master,
            universes,
            channels,
            lists,
            playbacks,
            channel_index,
        })
    }

    /// Bytes in one frame set: 512 per universe.
    pub fn frame_len(&self) -> usize {
        self.universes.len() * UNIVERSE_SLOTS
    }

    /// Index of a playback by name.
    pub fn playback_index(&self, name: &str) -> Option<usize> {
        self.playbacks.iter().position(|p| p.name == name)
    }

    /// The channel of a fixture attribute.
    pub fn channel(&self, fixture: u32, attribute: &Attribute) -> Option<ChannelId> {
        self.channel_index
            .get(&(fixture, attribute.clone()))
            .copied()
    }
}

fn patch_fixture(
    show: &Show,
    fixture: &Fixture,
    universe_index: &HashMap<u16, u32>,
    channels: &mut Vec<ChannelInfo>,
    channel_index: &mut HashMap<(u32, Attribute), ChannelId>,
) {
    // Validation guarantees profile, mode and universe exist; stay total anyway.
    let (Some(profile), Some(&universe)) = (
        show.profile(&fixture.profile),
        universe_index.get(&fixture.universe),
    ) else {
        return;
    };
    let Some(mode) = profile.mode(&fixture.mode) else {
        return;
    };
    let base = universe * UNIVERSE_SLOTS as u32 + u32::from(fixture.address) - 1;
    let has_dimmer = mode.channels.iter().any(|slot| {
        matches!(profile.channel_for_slot(slot), Some((c, ByteRole::Coarse)) if c.attribute == Attribute::Intensity)
    });
    // Coarse slots first, so fine slots can find their channel.
    let mut by_name: BTreeMap<&str, ChannelId> = BTreeMap::new();
    for (offset, slot) in mode.channels.iter().enumerate() {
        if let Some((channel, ByteRole::Coarse)) = profile.channel_for_slot(slot) {
            let htp = channel.attribute == Attribute::Intensity
                || (!has_dimmer && channel.attribute.is_color_emitter());
            let id = channels.len() as ChannelId;
            channels.push(ChannelInfo {
                fixture: fixture.id,
                attribute: channel.attribute.clone(),
                coarse: base + offset as u32,
                fine: NO_SLOT,
                htp,
                default: 0.0,
            });
            by_name.insert(channel.name.as_str(), id);
            channel_index.insert((fixture.id, channel.attribute.clone()), id);
        }
    }
    for (offset, slot) in mode.channels.iter().enumerate() {
        if let Some((channel, ByteRole::Fine)) = profile.channel_for_slot(slot)
            && let Some(&id) = by_name.get(channel.name.as_str())
        {
            channels[id as usize].fine = base + offset as u32;
        }
    }
    // Defaults are coarse DMX values: on a 16-bit channel `default: 128` means 128/0.
    for (name, id) in by_name {
        if let Some((channel, _)) = profile.channel_for_slot(name) {
            let info = &mut channels[id as usize];
            info.default =
                Value::Dmx(u32::from(channel.default) << if info.fine == NO_SLOT { 0 } else { 8 })
                    .level(info.bits()) as f32;
        }
    }
}

fn compile_list(
    list: &CueList,
    groups: &HashMap<&str, &[u32]>,
    channels: &[ChannelInfo],
    channel_index: &HashMap<(u32, Attribute), ChannelId>,
) -> CompiledList {
    // Per cue, the (channel, level) pairs it sets; a fixture entry overrides its group's
    // because `Target::Group` sorts before `Target::Fixture` in the BTreeMap.
    let per_cue: Vec<BTreeMap<ChannelId, f32>> = list
        .cues
        .iter()
        .map(|cue| cue_levels(cue, groups, channels, channel_index))
        .collect();
    let mut lanes: Vec<ChannelId> = per_cue.iter().flat_map(|m| m.keys().copied()).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let lane_of: HashMap<ChannelId, usize> =
        lanes.iter().enumerate().map(|(i, c)| (*c, i)).collect();

    let mut tracked = vec![UNSET; lanes.len()];
    let cues = list
        .cues
        .iter()
        .zip(&per_cue)
        .map(|(cue, levels)| {
            for (channel, level) in levels {
                tracked[lane_of[channel]] = *level;
            }
            CompiledCue {
                number: cue.number,
                label: cue.label.clone(),
                fade_in: cue.fade_in,
                fade_out: cue.fade_out_time(),
                delay: cue.delay,
                follow: cue.follow,
                assert: cue.assert,
                tracked: tracked.clone(),
            }
        })
        .collect();
    CompiledList {
        name: list.name.clone(),
        looped: list.looped,
        lanes,
        cues,
    }
}

fn cue_levels(
    cue: &Cue,
    groups: &HashMap<&str, &[u32]>,
    channels: &[ChannelInfo],
    channel_index: &HashMap<(u32, Attribute), ChannelId>,
) -> BTreeMap<ChannelId, f32> {
    let mut levels = BTreeMap::new();
    for (target, values) in &cue.values {
        let fixtures: &[u32] = match target {
            Target::Fixture(id) => std::slice::from_ref(id),
            Target::Group(name) => groups.get(name.as_str()).copied().unwrap_or(&[]),
        };
        for fixture in fixtures {
            for (attribute, value) in values {
                // A group may mix fixture types: attributes a fixture lacks are skipped.
                if let Some(&ch) = channel_index.get(&(*fixture, attribute.clone())) {
                    let level = value.level(channels[ch as usize].bits()).clamp(0.0, 1.0);
                    levels.insert(ch, level as f32);
                }
            }
        }
    }
    levels
}
