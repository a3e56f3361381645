//! Replication declared by the plugins that own the state (as bevy_replicon does it).
//!
//! Each plugin registers on the [`App`] what it replicates, by a name of its own:
//! - **state parts** ([`AppReplicateExt::replicate_state`], [`AppReplicateExt::replicate_resource`]):
//!   captured from the master's world into every snapshot, under their name, as JSON, and
//!   applied on a receiver through the handler the plugin registered;
//! - **commands** ([`AppReplicateExt::add_replicated_command`]) and **protocol messages**
//!   ([`AppReplicateExt::add_protocol_message`]): types that travel on the link; registered for
//!   their shape.
//!
//! The engine registers the playback state and show commands, net its node overrides and
//! messages, media its own: nobody edits another crate's protocol types to add a part.
//!
//! The [protocol hash](ReplicationRules::protocol_hash) is computed from the serde shape of
//! every registered type (its JSON Schema, as `schemars` derives it from the type and its serde
//! attributes), so two builds that disagree on any registered type refuse each other. Doc
//! comments are not part of the shape; field names, variants, tags, defaults and types are.
//!
//! Why schemars and not serde-reflection: serde-reflection traces by deserializing, and cannot
//! trace internally tagged enums (`#[serde(tag = "type")]`, used by every command and message
//! here) or `flatten`; schemars reads the serde attributes at compile time and handles both.
//!
//! Pure logic: no I/O. The transport (net) carries [`Parts`] in its snapshots.
//!
//! # Layout
//! - [`ReplicationRules`]: the registry (a resource), shapes, hash, capture and apply.
//! - [`AppReplicateExt`]: registration on the `App`.
//! - [`PartError`]: why a received part was not applied.

use std::any::{TypeId, type_name};
use std::collections::BTreeMap;
use std::sync::Arc;

use bevy::ecs::change_detection::Tick;
use bevy::prelude::*;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use schemars;

/// Registered state parts of one snapshot, by part name, serialized.
pub type Parts = BTreeMap<String, Value>;

/// What a registered type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// Replicated state: in every snapshot, applied on receivers.
    State,
    /// A command that travels on the link (applied by its owner's seam).
    Command,
    /// A message of the link itself.
    Message,
}

/// Why a part of a snapshot was not applied (the others still are).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PartError {
    #[error(
        "snapshot part {name:?} is not registered by this build (it registers {known}); the sender runs another build or another set of plugins"
    )]
    Unknown { name: String, known: String },
    #[error(
        "the snapshot has no part {name:?}, which this build registers; the sender runs another build or another set of plugins"
    )]
    Missing { name: String },
    #[error("snapshot part {name:?} is not a {type_name}: {reason}")]
    Decode {
        name: String,
        type_name: &'static str,
        reason: String,
    },
    #[error("snapshot part {name:?} was not applied: {reason}")]
    Refused { name: String, reason: String },
    #[error("part {name:?} ({type_name}) could not be serialized: {reason}")]
    Encode {
        name: String,
        type_name: &'static str,
        reason: String,
    },
}

/// A name registered twice with another type or kind (a setup mistake, found at build time).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("replicated part {name:?} is registered twice: as {first} and as {second}")]
pub struct DuplicatePart {
    pub name: String,
    pub first: String,
    pub second: String,
}

type CaptureFn = Arc<dyn Fn(&World) -> Result<Value, serde_json::Error> + Send + Sync>;
/// The change tick of the resource a part is read from (`None`: the resource is absent).
type WatchFn = Arc<dyn Fn(&World) -> Option<Tick> + Send + Sync>;
type ApplyFn = Arc<dyn Fn(&mut World, Value) -> Result<(), PartError> + Send + Sync>;
/// A command handler: the command's JSON (its `type` removed) applied in the master's world,
/// answered with what the caller is told.
pub type CommandFn = Arc<dyn Fn(&mut World, Value) -> Result<Value, String> + Send + Sync>;

#[derive(Clone)]
struct Rule {
    kind: PartKind,
    type_id: TypeId,
    type_name: &'static str,
    shape: Value,
    capture: Option<CaptureFn>,
    apply: Option<ApplyFn>,
    /// The resource the part is read from, when it is one ([`ReplicationRules::watch`]):
    /// [`ReplicationRules::capture_changed`] reads the part only when it changed.
    watch: Option<WatchFn>,
}

/// What [`ReplicationRules::capture_changed`] saw last, per part: the change tick of the
/// part's resource when it was last captured. Owned by whoever captures (the master's net).
#[derive(Debug, Clone, Default)]
pub struct CaptureMemo {
    seen: BTreeMap<String, Option<Tick>>,
    /// Parts read (serialized) so far, for checks and benches.
    pub captures: u64,
}

/// Everything registered for replication on one `App`.
#[derive(Resource, Clone, Default)]
pub struct ReplicationRules {
    rules: BTreeMap<String, Rule>,
    /// Command handlers by the `type` a REST body names: (part name, handler).
    handlers: BTreeMap<String, (String, CommandFn)>,
}

impl std::fmt::Debug for ReplicationRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (name, rule) in &self.rules {
            m.entry(name, &(rule.kind, rule.type_name));
        }
        m.finish()
    }
}

impl ReplicationRules {
    /// Registers a state part: `capture` reads it from the master's world for every snapshot,
    /// `apply` writes a received one into a receiver's world (an `Err` names why it was refused;
    /// the running state stays).
    pub fn add_state<T, C, A>(
        &mut self,
        name: &str,
        capture: C,
        apply: A,
    ) -> Result<&mut Self, DuplicatePart>
    where
        T: Serialize + DeserializeOwned + JsonSchema + 'static,
        C: Fn(&World) -> T + Send + Sync + 'static,
        A: Fn(&mut World, T) -> Result<(), String> + Send + Sync + 'static,
    {
        let part = name.to_string();
        let capture: CaptureFn = Arc::new(move |world| serde_json::to_value(capture(world)));
        let apply: ApplyFn = Arc::new(move |world, value| {
            let value = serde_json::from_value::<T>(value).map_err(|e| PartError::Decode {
                name: part.clone(),
                type_name: type_name::<T>(),
                reason: e.to_string(),
            })?;
            apply(world, value).map_err(|reason| PartError::Refused {
                name: part.clone(),
                reason,
            })
        });
        self.insert::<T>(name, PartKind::State, Some(capture), Some(apply))
    }

    /// Registers a command type that travels on the link (for its shape).
    pub fn add_command<C: JsonSchema + 'static>(
        &mut self,
        name: &str,
    ) -> Result<&mut Self, DuplicatePart> {
        self.insert::<C>(name, PartKind::Command, None, None)
    }

    /// Registers a command type with the handler that applies it on the master: a REST or
    /// WebSocket body whose `type` is `tag` is decoded as a `C` (without its `type`) and handed
    /// to `handler` in the master's world; what it answers goes back to the caller. The part
    /// that carries the command's effect to receivers is the plugin's replicated state.
    pub fn add_command_handler<C, H>(
        &mut self,
        name: &str,
        tag: &str,
        handler: H,
    ) -> Result<&mut Self, DuplicatePart>
    where
        C: DeserializeOwned + JsonSchema + 'static,
        H: Fn(&mut World, C) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.insert::<C>(name, PartKind::Command, None, None)?;
        if let Some((first, _)) = self.handlers.get(tag)
            && first != name
        {
            return Err(DuplicatePart {
                name: format!("command type {tag:?}"),
                first: first.clone(),
                second: name.to_string(),
            });
        }
        let tag_name = tag.to_string();
        let handler: CommandFn = Arc::new(move |world, value| {
            let command = serde_json::from_value::<C>(value)
                .map_err(|e| format!("invalid {tag_name:?} command: {e}"))?;
            handler(world, command)
        });
        self.handlers
            .insert(tag.to_string(), (name.to_string(), handler));
        Ok(self)
    }

    /// The command `type`s a handler is registered for, in order.
    pub fn command_tags(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    /// Applies a command whose `type` is `tag` through its handler (`None`: no handler for
    /// `tag`). `body` is the whole JSON object; its `type` is removed first.
    pub fn handle_command(
        &self,
        world: &mut World,
        tag: &str,
        mut body: Value,
    ) -> Option<Result<Value, String>> {
        let (_, handler) = self.handlers.get(tag)?;
        if let Value::Object(map) = &mut body {
            map.remove("type");
        }
        Some(handler(world, body))
    }

    /// Registers a message type of the link (for its shape).
    pub fn add_message<M: JsonSchema + 'static>(
        &mut self,
        name: &str,
    ) -> Result<&mut Self, DuplicatePart> {
        self.insert::<M>(name, PartKind::Message, None, None)
    }

    fn insert<T: JsonSchema + 'static>(
        &mut self,
        name: &str,
        kind: PartKind,
        capture: Option<CaptureFn>,
        apply: Option<ApplyFn>,
    ) -> Result<&mut Self, DuplicatePart> {
        let type_id = TypeId::of::<T>();
        if let Some(old) = self.rules.get(name) {
            if old.type_id == type_id && old.kind == kind {
                // The same plugin built twice into one app (or two plugins agreeing): once.
                return Ok(self);
            }
            return Err(DuplicatePart {
                name: name.to_string(),
                first: format!("{:?} {}", old.kind, old.type_name),
                second: format!("{kind:?} {}", type_name::<T>()),
            });
        }
        self.rules.insert(
            name.to_string(),
            Rule {
                kind,
                type_id,
                type_name: type_name::<T>(),
                shape: shape_of::<T>(),
                capture,
                apply,
                watch: None,
            },
        );
        Ok(self)
    }

    /// Declares that state part `name` is read from resource `R` only, so
    /// [`capture_changed`](Self::capture_changed) reads it only when `R` changed (Bevy's
    /// change ticks: a `ResMut` dereferenced mutably, an insert or a removal). `false` when
    /// `name` is not a registered state part.
    pub fn watch<R: Resource>(&mut self, name: &str) -> bool {
        match self.rules.get_mut(name) {
            Some(rule) if rule.kind == PartKind::State => {
                rule.watch = Some(Arc::new(|world: &World| {
                    world.get_resource_change_ticks::<R>().map(|t| t.changed)
                }));
                true
            }
            _ => false,
        }
    }

    /// The registered names of one kind, in name order.
    pub fn names(&self, kind: PartKind) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// How many parts and types are registered.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.rules.contains_key(name)
    }

    /// The serde shape of everything registered: `{name: {kind, schema}}`, keys sorted, doc
    /// comments left out. Stable across builds that agree on the types.
    pub fn shape(&self) -> Value {
        let parts: serde_json::Map<String, Value> = self
            .rules
            .iter()
            .map(|(name, rule)| {
                let mut entry = serde_json::Map::new();
                entry.insert("kind".into(), serde_json::json!(rule.kind));
                entry.insert("schema".into(), rule.shape.clone());
                (name.clone(), Value::Object(entry))
            })
            .collect();
        sorted(Value::Object(parts))
    }

    /// [`shape`](Self::shape) as pretty JSON text (what the golden files hold).
    pub fn shape_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.shape()).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The first 16 hex digits of the SHA-256 of [`shape_text`](Self::shape_text): changes
    /// whenever any registered type's serde shape does.
    pub fn protocol_hash(&self) -> String {
        let digest = Sha256::digest(self.shape_text().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Every registered state part, read from `world`.
    pub fn capture(&self, world: &World) -> Result<Parts, PartError> {
        self.capture_where(world, |_| true)
    }

    /// The registered state parts whose name `wanted` accepts, read from `world`.
    pub fn capture_where(
        &self,
        world: &World,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Parts, PartError> {
        let mut parts = Parts::new();
        for (name, rule) in &self.rules {
            if !wanted(name) {
                continue;
            }
            if let Some(capture) = &rule.capture {
                let value = capture(world).map_err(|e| PartError::Encode {
                    name: name.clone(),
                    type_name: rule.type_name,
                    reason: e.to_string(),
                })?;
                parts.insert(name.clone(), value);
            }
        }
        Ok(parts)
    }

    /// The registered state parts whose name `wanted` accepts and that may have changed since
    /// the last call with `memo`: a part [watched](Self::watch) on a resource is read only
    /// when that resource's change tick moved (or it appeared or went); an unwatched part is
    /// read every call. A quiet tick with only watched parts serializes nothing.
    pub fn capture_changed(
        &self,
        world: &World,
        memo: &mut CaptureMemo,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Parts, PartError> {
        let mut parts = Parts::new();
        for (name, rule) in &self.rules {
            let Some(capture) = &rule.capture else {
                continue;
            };
            if !wanted(name) {
                continue;
            }
            let seen = rule.watch.as_ref().map(|w| w(world));
            if let Some(seen) = seen
                && memo.seen.get(name) == Some(&seen)
            {
                continue;
            }
            let value = capture(world).map_err(|e| PartError::Encode {
                name: name.clone(),
                type_name: rule.type_name,
                reason: e.to_string(),
            })?;
            memo.captures += 1;
            if let Some(seen) = seen {
                memo.seen.insert(name.clone(), seen);
            }
            parts.insert(name.clone(), value);
        }
        Ok(parts)
    }

    /// Applies the parts given (a saved stage's) through their handlers; registered parts not
    /// given are left as they are. Unknown, malformed or refused parts come back, one error
    /// each.
    pub fn restore(&self, world: &mut World, parts: Parts) -> Vec<PartError> {
        let given: Vec<String> = parts.keys().cloned().collect();
        self.apply(world, parts)
            .into_iter()
            .filter(|e| !matches!(e, PartError::Missing { name } if !given.contains(name)))
            .collect()
    }

    /// Applies each part of a snapshot through its registered handler, in name order. Every
    /// part that can be applied is; what could not (unknown, missing, malformed or refused
    /// parts) comes back, one error each.
    pub fn apply(&self, world: &mut World, mut parts: Parts) -> Vec<PartError> {
        let mut errors = Vec::new();
        for (name, rule) in &self.rules {
            let Some(apply) = &rule.apply else { continue };
            match parts.remove(name) {
                Some(value) => {
                    if let Err(e) = apply(world, value) {
                        errors.push(e);
                    }
                }
                None => errors.push(PartError::Missing { name: name.clone() }),
            }
        }
        let known = self.names(PartKind::State).join(", ");
        for name in parts.into_keys() {
            errors.push(PartError::Unknown {
                name,
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.clone()
                },
            });
        }
        errors
    }
}

/// Present in the world whose parts are the reference (the master's): a part applied there
/// ([`ReplicationRules::restore`], a saved stage) is its own state again, not a replica.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct ReplicationSource;

/// Captures every registered state part of `world` (none when nothing is registered).
pub fn capture_parts(world: &World) -> Result<Parts, PartError> {
    match world.get_resource::<ReplicationRules>() {
        Some(rules) => rules.capture(world),
        None => Ok(Parts::new()),
    }
}

/// Applies `parts` through the handlers registered in `world`; see [`ReplicationRules::apply`].
pub fn apply_parts(world: &mut World, parts: Parts) -> Vec<PartError> {
    let rules = world.get_resource::<ReplicationRules>().cloned();
    match rules {
        Some(rules) => rules.apply(world, parts),
        None => ReplicationRules::default().apply(world, parts),
    }
}

/// Registration of replicated parts on an `App`.
pub trait AppReplicateExt {
    /// A replicated state part read by `capture` and written by `apply`
    /// ([`ReplicationRules::add_state`]).
    fn replicate_state<T, C, A>(&mut self, name: &str, capture: C, apply: A) -> &mut Self
    where
        T: Serialize + DeserializeOwned + JsonSchema + 'static,
        C: Fn(&World) -> T + Send + Sync + 'static,
        A: Fn(&mut World, T) -> Result<(), String> + Send + Sync + 'static;

    /// A replicated state part read from resource `R` only ([`replicate_state`] plus
    /// [`ReplicationRules::watch`]): the master reads it only on ticks where `R` changed.
    ///
    /// [`replicate_state`]: AppReplicateExt::replicate_state
    fn replicate_state_of<R, T, C, A>(&mut self, name: &str, capture: C, apply: A) -> &mut Self
    where
        R: Resource,
        T: Serialize + DeserializeOwned + JsonSchema + 'static,
        C: Fn(&World) -> T + Send + Sync + 'static,
        A: Fn(&mut World, T) -> Result<(), String> + Send + Sync + 'static;

    /// A resource replicated as it is (a receiver's copy is replaced; a master without it
    /// sends `null`, which removes it).
    fn replicate_resource<R>(&mut self, name: &str) -> &mut Self
    where
        R: Resource + Clone + Serialize + DeserializeOwned + JsonSchema;

    /// A command type that travels on the link.
    fn add_replicated_command<C: JsonSchema + 'static>(&mut self, name: &str) -> &mut Self;

    /// A message type of the link.
    fn add_protocol_message<M: JsonSchema + 'static>(&mut self, name: &str) -> &mut Self;

    /// A command type with its handler on the master, for REST/WebSocket bodies whose `type`
    /// is `tag` ([`ReplicationRules::add_command_handler`]).
    fn add_replicated_command_handler<C, H>(
        &mut self,
        name: &str,
        tag: &str,
        handler: H,
    ) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        H: Fn(&mut World, C) -> Result<Value, String> + Send + Sync + 'static;

    /// Whatever `register` registers (a crate's one function for its parts, which it can also
    /// call on a [`ReplicationRules`] of its own, without an app).
    fn add_replication(
        &mut self,
        register: impl FnOnce(&mut ReplicationRules) -> Result<(), DuplicatePart>,
    ) -> &mut Self;
}

fn register(app: &mut App, f: impl FnOnce(&mut ReplicationRules) -> Result<(), DuplicatePart>) {
    let mut rules = app
        .world_mut()
        .get_resource_or_insert_with(ReplicationRules::default);
    if let Err(e) = f(&mut rules) {
        // Two plugins claiming one name is a setup mistake: refuse to build the app.
        panic!("{e}");
    }
}

impl AppReplicateExt for App {
    fn replicate_state<T, C, A>(&mut self, name: &str, capture: C, apply: A) -> &mut Self
    where
        T: Serialize + DeserializeOwned + JsonSchema + 'static,
        C: Fn(&World) -> T + Send + Sync + 'static,
        A: Fn(&mut World, T) -> Result<(), String> + Send + Sync + 'static,
    {
        register(self, |r| r.add_state(name, capture, apply).map(|_| ()));
        self
    }

    fn replicate_state_of<R, T, C, A>(&mut self, name: &str, capture: C, apply: A) -> &mut Self
    where
        R: Resource,
        T: Serialize + DeserializeOwned + JsonSchema + 'static,
        C: Fn(&World) -> T + Send + Sync + 'static,
        A: Fn(&mut World, T) -> Result<(), String> + Send + Sync + 'static,
    {
        register(self, |r| {
            r.add_state(name, capture, apply)?.watch::<R>(name);
            Ok(())
        });
        self
    }

    fn replicate_resource<R>(&mut self, name: &str) -> &mut Self
    where
        R: Resource + Clone + Serialize + DeserializeOwned + JsonSchema,
    {
        self.replicate_state_of::<R, Option<R>, _, _>(
            name,
            |world| world.get_resource::<R>().cloned(),
            |world, value| {
                match value {
                    Some(r) => world.insert_resource(r),
                    None => {
                        world.remove_resource::<R>();
                    }
                }
                Ok(())
            },
        )
    }

    fn add_replicated_command<C: JsonSchema + 'static>(&mut self, name: &str) -> &mut Self {
        register(self, |r| r.add_command::<C>(name).map(|_| ()));
        self
    }

    fn add_protocol_message<M: JsonSchema + 'static>(&mut self, name: &str) -> &mut Self {
        register(self, |r| r.add_message::<M>(name).map(|_| ()));
        self
    }

    fn add_replicated_command_handler<C, H>(
        &mut self,
        name: &str,
        tag: &str,
        handler: H,
    ) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        H: Fn(&mut World, C) -> Result<Value, String> + Send + Sync + 'static,
    {
        register(self, |r| {
            r.add_command_handler::<C, H>(name, tag, handler)
                .map(|_| ())
        });
        self
    }

    fn add_replication(
        &mut self,
        f: impl FnOnce(&mut ReplicationRules) -> Result<(), DuplicatePart>,
    ) -> &mut Self {
        register(self, f);
        self
    }
}

/// The JSON Schema of `T` (draft 2020-12) without the keywords that do not change what is on
/// the wire: descriptions (doc comments), examples and the `$schema` marker.
fn shape_of<T: JsonSchema>() -> Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let schema = generator.into_root_schema_for::<T>();
    strip_docs(schema.to_value())
}

/// Object keys that name things (properties, definitions) rather than schema keywords.
const NAMING_KEYWORDS: [&str; 4] = ["properties", "$defs", "definitions", "patternProperties"];

fn strip_docs(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "description" | "examples" | "$schema"))
                .map(|(k, v)| {
                    let v = match (NAMING_KEYWORDS.contains(&k.as_str()), v) {
                        (true, Value::Object(named)) => Value::Object(
                            named.into_iter().map(|(n, s)| (n, strip_docs(s))).collect(),
                        ),
                        (_, v) => strip_docs(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_docs).collect()),
        other => other,
    }
}

/// The same value with every object's keys in sorted order (whatever serde_json's map keeps).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    mod v1 {
        use super::*;
        /// Version one.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum Cmd {
            Go { playback: String },
            Clear,
        }
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Resource)]
        pub struct Level {
            pub level: f64,
        }
    }

    mod v1_docs {
        use super::*;
        /// The same shape, other doc comments.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum Cmd {
            /// Next cue.
            Go {
                /// Which playback.
                playback: String,
            },
            Clear,
        }
    }

    mod v2_field {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum Cmd {
            Go { playback: String, fade: f64 },
            Clear,
        }
    }

    mod v2_tag {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Cmd {
            Go { playback: String },
            Clear,
        }
    }

    mod v2_type {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Resource)]
        pub struct Level {
            pub level: u8,
        }
    }

    fn hash_of<C: JsonSchema + 'static>() -> String {
        let mut rules = ReplicationRules::default();
        rules.add_command::<C>("test.cmd").expect("registers");
        rules.protocol_hash()
    }

    #[test]
    fn the_hash_changes_with_any_registered_types_shape_and_only_then() {
        let base = hash_of::<v1::Cmd>();
        assert_eq!(base.len(), 16, "16 hex digits: {base}");
        assert_eq!(base, hash_of::<v1::Cmd>(), "the same types, the same hash");
        assert_eq!(
            base,
            hash_of::<v1_docs::Cmd>(),
            "doc comments are not part of the wire shape"
        );
        assert_ne!(base, hash_of::<v2_field::Cmd>(), "a new field changes it");
        assert_ne!(base, hash_of::<v2_tag::Cmd>(), "another tag changes it");

        let state_hash = |level_u8: bool| {
            let mut app = App::new();
            app.add_replicated_command::<v1::Cmd>("test.cmd");
            if level_u8 {
                app.replicate_resource::<v2_type::Level>("test.level");
            } else {
                app.replicate_resource::<v1::Level>("test.level");
            }
            app.world().resource::<ReplicationRules>().protocol_hash()
        };
        assert_ne!(state_hash(false), state_hash(true), "f64 → u8 changes it");
        assert_ne!(
            state_hash(false),
            base,
            "a state part registered besides changes it"
        );
        let mut renamed = ReplicationRules::default();
        renamed
            .add_command::<v1::Cmd>("test.other")
            .expect("registers");
        assert_ne!(
            renamed.protocol_hash(),
            base,
            "the part's name is shape too"
        );
    }

    #[test]
    fn registered_parts_travel_by_name_and_apply_through_their_handlers() {
        let mut master = App::new();
        master
            .replicate_resource::<v1::Level>("test.level")
            .insert_resource(v1::Level { level: 0.25 });
        let parts = capture_parts(master.world()).expect("captures");
        assert_eq!(
            serde_json::to_string(&parts).expect("json"),
            r#"{"test.level":{"level":0.25}}"#
        );

        let mut receiver = App::new();
        receiver.replicate_resource::<v1::Level>("test.level");
        assert_eq!(apply_parts(receiver.world_mut(), parts), vec![]);
        assert_eq!(
            receiver.world().get_resource::<v1::Level>(),
            Some(&v1::Level { level: 0.25 })
        );
    }

    #[test]
    fn unknown_missing_malformed_and_refused_parts_are_errors_not_panics() {
        let mut app = App::new();
        app.replicate_resource::<v1::Level>("test.level")
            .replicate_state::<u32, _, _>(
                "test.odd",
                |_| 2,
                |_, n| {
                    if n % 2 == 1 {
                        Ok(())
                    } else {
                        Err(format!("{n} is even"))
                    }
                },
            );
        let parts = Parts::from([
            ("test.level".to_string(), serde_json::json!({"level": "x"})),
            ("test.odd".to_string(), serde_json::json!(4)),
            ("media.clip".to_string(), serde_json::json!({})),
        ]);
        let errors = apply_parts(app.world_mut(), parts);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            matches!(&errors[..], [
                PartError::Decode { name: a, .. },
                PartError::Refused { name: b, reason },
                PartError::Unknown { name: c, known },
            ] if a == "test.level" && b == "test.odd" && reason == "4 is even"
                && c == "media.clip" && known == "test.level, test.odd"),
            "one error per bad part, each naming it: {text:?}"
        );
        assert!(app.world().get_resource::<v1::Level>().is_none());

        let errors = apply_parts(
            app.world_mut(),
            Parts::from([("test.odd".to_string(), serde_json::json!(3))]),
        );
        assert_eq!(
            errors,
            vec![PartError::Missing {
                name: "test.level".into()
            }],
            "the part that came is applied, the missing one named"
        );
    }

    #[test]
    fn one_name_for_two_types_is_refused_and_the_same_registration_twice_is_once() {
        let mut rules = ReplicationRules::default();
        rules.add_command::<v1::Cmd>("x").expect("first");
        rules.add_command::<v1::Cmd>("x").expect("the same again");
        let e = rules.add_message::<v2_field::Cmd>("x").expect_err("clash");
        assert!(e.to_string().contains("registered twice"), "{e}");
        assert_eq!(rules.names(PartKind::Command), vec!["x"]);
    }

    #[test]
    fn a_command_handler_gets_the_body_without_its_type_and_answers() {
        #[derive(Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct Nudge {
            by: f64,
        }
        let mut app = App::new();
        app.insert_resource(v1::Level { level: 0.25 })
            .add_replicated_command_handler::<Nudge, _>("test.nudge", "nudge", |world, n| {
                let mut level = world.resource_mut::<v1::Level>();
                level.level += n.by;
                Ok(serde_json::json!({ "level": level.level }))
            });
        let rules = app.world().resource::<ReplicationRules>().clone();
        assert_eq!(rules.command_tags(), vec!["nudge"]);
        assert_eq!(rules.names(PartKind::Command), vec!["test.nudge"]);
        let body = serde_json::json!({"type": "nudge", "by": 0.5});
        let answer = rules.handle_command(app.world_mut(), "nudge", body);
        assert_eq!(answer, Some(Ok(serde_json::json!({"level": 0.75}))));
        let bad = rules.handle_command(app.world_mut(), "nudge", serde_json::json!({"by": "x"}));
        assert!(
            matches!(&bad, Some(Err(e)) if e.contains("invalid \"nudge\" command")),
            "{bad:?}"
        );
        assert_eq!(
            rules.handle_command(app.world_mut(), "other", Value::Null),
            None
        );
        assert_eq!(app.world().resource::<v1::Level>().level, 0.75);
    }

    /// A watched part is read once when it appears, never on ticks where its resource did not
    /// change (even through a `ResMut` that was only read), once per change, and once when it
    /// goes away.
    #[test]
    fn a_watched_part_is_captured_only_when_its_resource_changed() {
        #[derive(Resource, Default)]
        struct Bumps(u32);
        let mut app = App::new();
        app.replicate_resource::<v1::Level>("test.level")
            .insert_resource(v1::Level { level: 0.25 })
            .init_resource::<Bumps>()
            .add_systems(
                Update,
                |level: Option<ResMut<v1::Level>>, bumps: Res<Bumps>| {
                    // Reads through `ResMut` without writing: no change.
                    let _ = level.map(|l| l.level + f64::from(bumps.0));
                },
            );
        let rules = app.world().resource::<ReplicationRules>().clone();
        let mut memo = CaptureMemo::default();
        let tick = |app: &mut App, memo: &mut CaptureMemo| {
            app.update();
            rules
                .capture_changed(app.world(), memo, |_| true)
                .expect("captures")
        };
        let first = tick(&mut app, &mut memo);
        assert_eq!(first.len(), 1, "the first capture reads it");
        assert_eq!(memo.captures, 1);
        for _ in 0..100 {
            assert!(tick(&mut app, &mut memo).is_empty());
        }
        assert_eq!(memo.captures, 1, "100 quiet ticks: no capture");
        app.world_mut().resource_mut::<v1::Level>().level = 0.5;
        let changed = tick(&mut app, &mut memo);
        assert_eq!(
            changed.get("test.level"),
            Some(&serde_json::json!({"level": 0.5}))
        );
        assert_eq!(memo.captures, 2, "one change, one capture");
        assert!(tick(&mut app, &mut memo).is_empty());
        app.world_mut().remove_resource::<v1::Level>();
        app.world_mut().resource_mut::<Bumps>().0 += 1;
        let gone = tick(&mut app, &mut memo);
        assert_eq!(
            gone.get("test.level"),
            Some(&Value::Null),
            "removal is a change"
        );
        assert!(tick(&mut app, &mut memo).is_empty());
        assert_eq!(memo.captures, 3);
        // An unwatched part is read every call.
        let mut plain = ReplicationRules::default();
        plain
            .add_state::<u32, _, _>("test.n", |_| 7, |_, _| Ok(()))
            .expect("registers");
        let mut memo = CaptureMemo::default();
        for _ in 0..3 {
            assert_eq!(
                plain
                    .capture_changed(app.world(), &mut memo, |_| true)
                    .expect("captures")
                    .len(),
                1
            );
        }
    }

    #[test]
    fn a_field_named_description_stays_in_the_shape() {
        #[derive(Serialize, Deserialize, JsonSchema)]
        struct Clip {
            /// Shown to the operator.
            description: String,
        }
        let mut rules = ReplicationRules::default();
        rules.add_message::<Clip>("clip").expect("registers");
        let text = rules.shape_text();
        assert!(text.contains("\"description\": {"), "{text}");
        assert!(!text.contains("Shown to the operator"), "{text}");
    }
}
