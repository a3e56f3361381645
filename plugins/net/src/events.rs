//! A node's structured events: one JSON object per line (`--events FILE`, `-` for standard
//! output), for tests and tools. Human log lines stay on `tracing`.
//!
//! Each line is a [`NodeEvent`] with its kind in `"event"`, e.g.
//! `{"event":"command_executed","id":"cmd-master-01-…","command":"node blackout on","tick":812}`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bevy::prelude::Resource;
use serde::{Deserialize, Serialize};

/// What a node reports on its events stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A master listens for REST and WebSocket connections; over TLS with the certificate
    /// of this SHA-256 `fingerprint` (none: plaintext, `insecure`).
    Listening {
        node_id: String,
        addr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// A receiver starts (again, after a restart): its universes and how it finds its master.
    Starting {
        node_id: String,
        universes: Vec<u16>,
        master: String,
    },
    /// Linked to a master, which assigned these universes.
    Connected {
        master_id: String,
        universes: Vec<u16>,
    },
    /// The link to the master went down; `on_loss` is what the output does (`hold`, `blackout`).
    MasterLost { reason: String, on_loss: String },
    /// The master refused this node.
    Refused { reason: String },
    /// This receiver pinned its master's certificate: `first_use` when it trusted it now and
    /// kept it in `file` (TOFU), else the pin came from the config.
    MasterPinned {
        fingerprint: String,
        first_use: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// A snapshot from the master was applied at `tick`.
    SnapshotApplied { seq: u64, tick: u64 },
    /// A node command ran (`command`: what it did).
    CommandExecuted {
        id: String,
        command: String,
        tick: u64,
    },
    /// A node command sent again (its ack was lost) was acknowledged, not run twice.
    CommandRepeated { id: String, tick: u64 },
    /// A node command failed here.
    CommandFailed {
        id: String,
        reason: String,
        tick: u64,
    },
    /// An identify flash ended; the output is the show's again.
    IdentifyDone { tick: u64 },
    /// A master saw a node advertised over mDNS.
    MdnsSeen {
        role: String,
        node_id: String,
        addr: String,
        /// The TLS certificate fingerprint it advertises (TXT `fingerprint`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// The node restarts itself (an acknowledged restart command).
    Restarting { node_id: String },
    /// The node stopped cleanly.
    Stopped { node_id: String },
}

/// Where a node's events go: cloned into every part that reports (systems, server threads).
/// Without one (a node inside another program, tests), nothing is written.
#[derive(Resource, Clone, Default)]
pub struct NodeEvents {
    sink: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
}

impl std::fmt::Debug for NodeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEvents")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl NodeEvents {
    /// Events appended to `path` (`-`: standard output).
    pub fn open(path: &Path) -> std::io::Result<NodeEvents> {
        if path == Path::new("-") {
            return Ok(NodeEvents::to_writer(std::io::stdout()));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot open the events file {}: {e}", path.display()),
                )
            })?;
        Ok(NodeEvents::to_writer(file))
    }

    /// Events written to `writer`, a line each.
    pub fn to_writer(writer: impl Write + Send + 'static) -> NodeEvents {
        NodeEvents {
            sink: Some(Arc::new(Mutex::new(Box::new(writer)))),
        }
    }

    /// Writes `event` as one JSON line. A failed write is logged; the node keeps running.
    pub fn emit(&self, event: &NodeEvent) {
        let Some(sink) = &self.sink else { return };
        let mut line = match serde_json::to_string(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("cannot encode event {event:?}: {e}");
                return;
            }
        };
        line.push('\n');
        let Ok(mut w) = sink.lock() else { return };
        if let Err(e) = w.write_all(line.as_bytes()).and_then(|()| w.flush()) {
            tracing::warn!("cannot write an event: {e}");
        }
    }
}

/// Emits `event` if the app has a [`NodeEvents`] (for systems: `Option<Res<NodeEvents>>`).
pub fn emit(events: Option<&NodeEvents>, event: NodeEvent) {
    if let Some(events) = events {
        events.emit(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_are_one_tagged_json_object_per_line_and_read_back() {
        let buffer = Shared::default();
        let events = NodeEvents::to_writer(buffer.clone());
        let sent = [
            NodeEvent::Connected {
                master_id: "master-01".into(),
                universes: vec![1, 2],
            },
            NodeEvent::CommandExecuted {
                id: "cmd-master-01-a1-7".into(),
                command: "node blackout on".into(),
                tick: 812,
            },
            NodeEvent::IdentifyDone { tick: 900 },
        ];
        for e in &sent {
            events.emit(e);
        }
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"event":"connected","master_id":"master-01","universes":[1,2]}"#
        );
        assert_eq!(
            lines[1],
            r#"{"event":"command_executed","id":"cmd-master-01-a1-7","command":"node blackout on","tick":812}"#
        );
        let back: Vec<NodeEvent> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("parses"))
            .collect();
        assert_eq!(back, sent);
    }

    #[test]
    fn no_sink_writes_nothing_and_a_bad_path_is_a_clear_error() {
        NodeEvents::default().emit(&NodeEvent::IdentifyDone { tick: 1 });
        let e = NodeEvents::open(Path::new("/nonexistent-dir/events.jsonl")).expect_err("no dir");
        assert!(
            e.to_string()
                .contains("cannot open the events file /nonexistent-dir/events.jsonl"),
            "{e}"
        );
    }
}
