//! Whole-show validation: every problem, by name, at once.
//!
//! A programmer who patched 40 fixtures wants all the overlaps in one go, not one per run.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Attribute, ByteRole, Fixture, FixtureProfile, Show, Target, UNIVERSE_SLOTS};
use crate::value::Value;

/// Highest universe number sACN can carry.
pub const MAX_UNIVERSE: u16 = 63999;
/// Highest tick rate the engine accepts (DMX512 itself tops out near 44 Hz for full frames).
pub const MAX_TICK_RATE: u32 = 1000;
/// Longest time (fade, delay, follow, release) a show or a command may name: 24 h. Longer
/// values are almost surely typos, and keeping times this small keeps every tick count far
/// from `u64` overflow at any tick rate.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Why `seconds` is not a time a show or a command may use, if it is not: times are finite
/// seconds within `0.0..=`[`MAX_SECONDS`].
pub fn time_problem(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || seconds < 0.0 {
        Some(format!(
            "{seconds:?} is not a time: times are finite seconds ≥ 0"
        ))
    } else if seconds > MAX_SECONDS {
        Some(format!(
            "{seconds:?} s is longer than the {MAX_SECONDS} s (24 h) a time may be"
        ))
    } else {
        None
    }
}

/// Why `level` is not a level (finite, within `0.0..=1.0`), if it is not.
pub fn level_problem(level: f64) -> Option<String> {
    (!(0.0..=1.0).contains(&level)).then(|| format!("{level:?} is outside 0.0..=1.0"))
}

/// One problem in a show, naming the things involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("effect {name:?}: {message}")]
    Effect { name: String, message: String },
    #[error("clip {name:?}: {message}")]
    Clip { name: String, message: String },
    #[error("tick_rate {0} is outside 1..={MAX_TICK_RATE} Hz")]
    TickRate(u32),
    #[error("{what} {value:?} is outside 0.0..=1.0")]
    Level { what: String, value: f64 },
    #[error("universe {0} is outside 1..={MAX_UNIVERSE}")]
    UniverseRange(u16),
    #[error("universe {0} is defined twice")]
    DuplicateUniverse(u16),
    #[error("universe {universe}: {message}")]
    Output { universe: u16, message: String },
    #[error("profile {0:?} is defined twice")]
    DuplicateProfile(String),
    #[error("profile {profile:?}: {message}")]
    Profile { profile: String, message: String },
    #[error("fixture {0} is patched twice (fixture ids must be unique)")]
    DuplicateFixture(u32),
    #[error("fixture {id} {name:?}: unknown profile {profile:?}")]
    UnknownProfile {
        id: u32,
        name: String,
        profile: String,
    },
    #[error("fixture {id} {name:?}: profile {profile:?} has no mode {mode:?} (modes: {known})")]
    UnknownMode {
        id: u32,
        name: String,
        profile: String,
        mode: String,
        known: String,
    },
    #[error("fixture {id} {name:?}: universe {universe} is not defined in the show")]
    UnknownUniverse {
        id: u32,
        name: String,
        universe: u16,
    },
    #[error("fixture {id} {name:?}: address {address} is outside 1..=512")]
    AddressRange { id: u32, name: String, address: u16 },
    #[error(
        "fixture {id} {name:?}: address {address} + {footprint} channels ends at {end}, past 512 in universe {universe}"
    )]
    PastUniverseEnd {
        id: u32,
        name: String,
        universe: u16,
        address: u16,
        footprint: usize,
        end: usize,
    },
    #[error(
        "fixtures {a} {a_name:?} and {b} {b_name:?} overlap in universe {universe} at addresses {first}..={last}"
    )]
    Overlap {
        universe: u16,
        a: u32,
        a_name: String,
        b: u32,
        b_name: String,
        first: usize,
        last: usize,
    },
    #[error("group {0:?} is defined twice")]
    DuplicateGroup(String),
    #[error("group {group:?}: unknown fixture {fixture}")]
    GroupUnknownFixture { group: String, fixture: u32 },
    #[error("cue list {0:?} is defined twice")]
    DuplicateCueList(String),
    #[error("cue list {list:?}: cue {cue} {message}")]
    Cue {
        list: String,
        cue: String,
        message: String,
    },
    #[error("cue list {list:?}: cue {cue} comes after cue {previous}; cue numbers must ascend")]
    CueOrder {
        list: String,
        cue: String,
        previous: String,
    },
    #[error("playback {0:?} is defined twice")]
    DuplicatePlayback(String),
    #[error("playback {playback:?}: unknown cue list {cue_list:?}")]
    PlaybackUnknownList { playback: String, cue_list: String },
    #[error("playback {playback:?}: release_time {problem}")]
    ReleaseTime { playback: String, problem: String },
    /// A problem in the show's media part (outputs, layers, media cue actions).
    #[error("{0}")]
    Media(String),
}

/// Checks a whole show. `Ok(())` or every problem found.
pub fn validate(show: &Show) -> Result<(), Vec<ValidationError>> {
    let mut errors = Vec::new();
    if show.tick_rate == 0 || show.tick_rate > MAX_TICK_RATE {
        errors.push(ValidationError::TickRate(show.tick_rate));
    }
    check_level(&mut errors, "grand_master", show.grand_master);
    check_universes(show, &mut errors);
    check_profiles(show, &mut errors);
    check_patch(show, &mut errors);
    check_groups(show, &mut errors);
    check_cue_lists(show, &mut errors);
    check_playbacks(show, &mut errors);
    crate::clips::check_clips(&show.clips, &mut errors);
    let has = |id: u32, attribute: &Attribute| {
        let fixture = show.fixture(id)?;
        let profile = show.profile(&fixture.profile)?;
        let mode = profile.modes.iter().find(|m| m.name == fixture.mode)?;
        Some(mode.channels.iter().any(|name| {
            profile
                .channels
                .iter()
                .any(|c| &c.name == name && &c.attribute == attribute)
        }))
    };
    errors.extend(
        crate::effects::effect_problems(&show.effects, has)
            .into_iter()
            .map(|(name, message)| ValidationError::Effect { name, message }),
    );
    let cue_exists = |list: &str, cue| {
        show.cue_lists
            .iter()
            .any(|l| l.name == list && l.cues.iter().any(|c| c.number == cue))
    };
    errors.extend(
        crate::media::media_problems(&show.media, &cue_exists)
            .into_iter()
            .map(ValidationError::Media),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_level(errors: &mut Vec<ValidationError>, what: &str, value: f64) {
    if !(0.0..=1.0).contains(&value) {
        errors.push(ValidationError::Level {
            what: what.to_string(),
            value,
        });
    }
}

fn check_universes(show: &Show, errors: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for u in &show.universes {
        if u.id == 0 || u.id > MAX_UNIVERSE {
            errors.push(ValidationError::UniverseRange(u.id));
        }
        if !seen.insert(u.id) {
            errors.push(ValidationError::DuplicateUniverse(u.id));
        }
        if let Some(input) = &u.input {
            let problem = match input.source {
                crate::model::InputSource::Sacn(n) if n == 0 || n > MAX_UNIVERSE => Some(format!(
                    "input sACN universe {n} is outside 1..={MAX_UNIVERSE}"
                )),
                crate::model::InputSource::ArtNet(p) if p > 0x7fff => Some(format!(
                    "input Art-Net port-address {p} is outside 0..=32767"
                )),
                _ => None,
            };
            if let Some(message) = problem {
                errors.push(ValidationError::Output {
                    universe: u.id,
                    message,
                });
            }
        }
        for output in &u.outputs {
            if let Some(message) = output_problem(output) {
                errors.push(ValidationError::Output {
                    universe: u.id,
                    message,
                });
            }
        }
    }
}

fn output_problem(output: &crate::model::Output) -> Option<String> {
    use crate::model::Output;
    match output {
        Output::Sacn(s) => {
            if let Some(u) = s.universe.filter(|u| *u == 0 || *u > MAX_UNIVERSE) {
                return Some(format!("sACN universe {u} is outside 1..={MAX_UNIVERSE}"));
            }
            if s.priority > 200 {
                return Some(format!("sACN priority {} is outside 0..=200", s.priority));
            }
            if let Some(u) = s.sync_universe.filter(|u| *u > MAX_UNIVERSE) {
                return Some(format!(
                    "sACN sync universe {u} is outside 1..={MAX_UNIVERSE}"
                ));
            }
            None
        }
        Output::ArtNet(a) => a
            .port_address
            .filter(|p| *p > 0x7fff)
            .map(|p| format!("Art-Net port-address {p} is outside 0..=32767")),
        Output::UsbPro(u) => u
            .port
            .is_empty()
            .then(|| "USB Pro output needs a serial port".to_string()),
    }
}

fn check_profiles(show: &Show, errors: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for p in &show.profiles {
        let reference = p.reference();
        if !seen.insert(reference.clone()) {
            errors.push(ValidationError::DuplicateProfile(reference.clone()));
        }
        for message in profile_problems(p) {
            errors.push(ValidationError::Profile {
                profile: reference.clone(),
                message,
            });
        }
    }
}

/// Problems inside one profile (used by the fixture importer too).
pub fn profile_problems(p: &FixtureProfile) -> Vec<String> {
    let mut problems = Vec::new();
    let mut slot_names = BTreeSet::new();
    for c in &p.channels {
        if !slot_names.insert(c.name.as_str()) {
            problems.push(format!("channel name {:?} is used twice", c.name));
        }
        if let Some(fine) = &c.fine
            && !slot_names.insert(fine.as_str())
        {
            problems.push(format!("fine channel name {fine:?} is used twice"));
        }
        for cap in &c.capabilities {
            if cap.min > cap.max {
                problems.push(format!(
                    "channel {:?}: capability {:?} has min {} above max {}",
                    c.name, cap.label, cap.min, cap.max
                ));
            }
        }
    }
    if p.modes.is_empty() {
        problems.push("has no modes".to_string());
    }
    let mut mode_names = BTreeSet::new();
    for m in &p.modes {
        if !mode_names.insert(m.name.as_str()) {
            problems.push(format!("mode {:?} is defined twice", m.name));
        }
        if m.channels.len() > UNIVERSE_SLOTS {
            problems.push(format!(
                "mode {:?} has {} channels, more than a universe holds",
                m.name,
                m.channels.len()
            ));
        }
        let mut used = BTreeSet::new();
        let mut attributes: BTreeMap<&Attribute, &str> = BTreeMap::new();
        for slot in &m.channels {
            if !used.insert(slot.as_str()) {
                problems.push(format!("mode {:?} lists channel {slot:?} twice", m.name));
            }
            match p.channel_for_slot(slot) {
                None => problems.push(format!(
                    "mode {:?} lists channel {slot:?}, which the profile does not define",
                    m.name
                )),
                Some((c, ByteRole::Coarse)) => {
                    if let Some(other) = attributes.insert(&c.attribute, &c.name) {
                        problems.push(format!(
                            "mode {:?}: channels {other:?} and {:?} both carry {}; name one Other(\"…\")",
                            m.name,
                            c.name,
                            c.attribute.name()
                        ));
                    }
                }
                Some((c, ByteRole::Fine)) => {
                    if !m.channels.contains(&c.name) {
                        problems.push(format!(
                            "mode {:?} lists fine channel {slot:?} without its coarse channel {:?}",
                            m.name, c.name
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn check_patch(show: &Show, errors: &mut Vec<ValidationError>) {
    let universes: BTreeSet<u16> = show.universes.iter().map(|u| u.id).collect();
    let mut ids = BTreeSet::new();
    // universe -> (first slot, last slot, fixture) of every placed fixture, for overlap checks.
    let mut placed: BTreeMap<u16, Vec<(usize, usize, &Fixture)>> = BTreeMap::new();
    for f in &show.fixtures {
        if !ids.insert(f.id) {
            errors.push(ValidationError::DuplicateFixture(f.id));
        }
        if !universes.contains(&f.universe) {
            errors.push(ValidationError::UnknownUniverse {
                id: f.id,
                name: f.name.clone(),
                universe: f.universe,
            });
        }
        if f.address == 0 || usize::from(f.address) > UNIVERSE_SLOTS {
            errors.push(ValidationError::AddressRange {
                id: f.id,
                name: f.name.clone(),
                address: f.address,
            });
            continue;
        }
        let Some(profile) = show.profile(&f.profile) else {
            errors.push(ValidationError::UnknownProfile {
                id: f.id,
                name: f.name.clone(),
                profile: f.profile.clone(),
            });
            continue;
        };
        let Some(mode) = profile.mode(&f.mode) else {
            errors.push(ValidationError::UnknownMode {
                id: f.id,
                name: f.name.clone(),
                profile: f.profile.clone(),
                mode: f.mode.clone(),
                known: profile
                    .modes
                    .iter()
                    .map(|m| format!("{:?}", m.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
            continue;
        };
        let footprint = mode.channels.len();
        let first = usize::from(f.address);
        let last = first + footprint.max(1) - 1;
        if last > UNIVERSE_SLOTS {
            errors.push(ValidationError::PastUniverseEnd {
                id: f.id,
                name: f.name.clone(),
                universe: f.universe,
                address: f.address,
                footprint,
                end: last,
            });
        }
        if footprint > 0 {
            placed
                .entry(f.universe)
                .or_default()
                .push((first, last.min(UNIVERSE_SLOTS), f));
        }
    }
    for (universe, mut spans) in placed {
        spans.sort_by_key(|(first, _, f)| (*first, f.id));
        for (i, (a_first, a_last, a)) in spans.iter().enumerate() {
            let _ = a_first;
            for (b_first, b_last, b) in &spans[i + 1..] {
                if b_first > a_last {
                    break;
                }
                errors.push(ValidationError::Overlap {
                    universe,
                    a: a.id,
                    a_name: a.name.clone(),
                    b: b.id,
                    b_name: b.name.clone(),
                    first: *b_first,
                    last: (*a_last).min(*b_last),
                });
            }
        }
    }
}

fn check_groups(show: &Show, errors: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for g in &show.groups {
        if !seen.insert(g.name.as_str()) {
            errors.push(ValidationError::DuplicateGroup(g.name.clone()));
        }
        for id in &g.fixtures {
            if show.fixture(*id).is_none() {
                errors.push(ValidationError::GroupUnknownFixture {
                    group: g.name.clone(),
                    fixture: *id,
                });
            }
        }
    }
}

/// The resolution (8 or 16) of an attribute on a fixture, if the fixture's mode has it.
fn attribute_bits(show: &Show, fixture: &Fixture, attribute: &Attribute) -> Option<u8> {
    let profile = show.profile(&fixture.profile)?;
    let mode = profile.mode(&fixture.mode)?;
    let channel = profile
        .channels
        .iter()
        .find(|c| c.attribute == *attribute && mode.channels.contains(&c.name))?;
    let fine = channel
        .fine
        .as_ref()
        .is_some_and(|fine| mode.channels.contains(fine));
    Some(if fine { 16 } else { 8 })
}

fn check_cue_lists(show: &Show, errors: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for list in &show.cue_lists {
        if !seen.insert(list.name.as_str()) {
            errors.push(ValidationError::DuplicateCueList(list.name.clone()));
        }
        let mut previous = None;
        for cue in &list.cues {
            let cue_err = |message: String| ValidationError::Cue {
                list: list.name.clone(),
                cue: cue.number.to_string(),
                message,
            };
            if let Some(prev) = previous
                && cue.number <= prev
            {
                errors.push(ValidationError::CueOrder {
                    list: list.name.clone(),
                    cue: cue.number.to_string(),
                    previous: prev.to_string(),
                });
            }
            previous = Some(cue.number);
            let follow = match cue.follow {
                Some(crate::model::Follow::After(t)) => Some(t),
                _ => None,
            };
            for (what, t) in [
                ("fade_in", Some(cue.fade_in)),
                ("fade_out", cue.fade_out),
                ("delay", Some(cue.delay)),
                ("follow After", follow),
            ] {
                if let Some(problem) = t.and_then(time_problem) {
                    errors.push(cue_err(format!("has {what} {problem}")));
                }
            }
            for (target, values) in &cue.values {
                let fixtures: Vec<&Fixture> = match target {
                    Target::Fixture(id) => match show.fixture(*id) {
                        Some(f) => vec![f],
                        None => {
                            errors.push(cue_err(format!("sets unknown fixture {id}")));
                            continue;
                        }
                    },
                    Target::Group(name) => match show.groups.iter().find(|g| g.name == *name) {
                        Some(g) => g
                            .fixtures
                            .iter()
                            .filter_map(|id| show.fixture(*id))
                            .collect(),
                        None => {
                            errors.push(cue_err(format!("sets unknown group {name:?}")));
                            continue;
                        }
                    },
                };
                for (attribute, value) in values {
                    let bits: Vec<u8> = fixtures
                        .iter()
                        .filter_map(|f| attribute_bits(show, f, attribute))
                        .collect();
                    if bits.is_empty() {
                        let whom = match target {
                            Target::Fixture(id) => format!("fixture {id}"),
                            Target::Group(name) => format!("no fixture of group {name:?}"),
                        };
                        errors.push(cue_err(format!(
                            "sets {} but {whom} has none",
                            attribute.name()
                        )));
                        continue;
                    }
                    match *value {
                        Value::Norm(x) if !(0.0..=1.0).contains(&x) => errors.push(cue_err(
                            format!("sets {} to {x}, outside 0.0..=1.0", attribute.name()),
                        )),
                        Value::Dmx(raw) => {
                            let max = if bits.iter().all(|b| *b == 16) {
                                65535
                            } else {
                                255
                            };
                            if raw > max {
                                errors.push(cue_err(format!(
                                    "sets {} to Dmx({raw}), past {max} for its {}-bit channel",
                                    attribute.name(),
                                    if max == 255 { 8 } else { 16 }
                                )));
                            }
                        }
                        Value::Norm(_) => {}
                    }
                }
            }
        }
    }
}

fn check_playbacks(show: &Show, errors: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for p in &show.playbacks {
        if !seen.insert(p.name.as_str()) {
            errors.push(ValidationError::DuplicatePlayback(p.name.clone()));
        }
        if !show.cue_lists.iter().any(|l| l.name == p.cue_list) {
            errors.push(ValidationError::PlaybackUnknownList {
                playback: p.name.clone(),
                cue_list: p.cue_list.clone(),
            });
        }
        check_level(errors, &format!("playback {:?} master", p.name), p.master);
        if let Some(problem) = time_problem(p.release_time) {
            errors.push(ValidationError::ReleaseTime {
                playback: p.name.clone(),
                problem,
            });
        }
    }
}
