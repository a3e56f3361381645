//! An in-memory rig: one master app and N receiver apps linked without sockets (the model is
//! bevy_replicon's `test_app`). Each app runs its real plugins (`EnginePlugin`, `MasterPlugin`,
//! `ReceiverPlugin`); only the transport is replaced: frames move through the channels the
//! link would use, when the test pumps them ([`Rig::step`]).
//!
//! Time is injected: every `update` is one fixed tick (`TimeUpdateStrategy::FixedTimesteps`),
//! and the master's registry measures heartbeats and ack timeouts on a manual clock
//! ([`Rig::clock`]), moved only by the test. The one thing that takes real time is a
//! receiver's executed-id log, which makes an id durable before it releases the ack:
//! [`Rig::step_until`] keeps stepping (a few milliseconds apart) until a condition holds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_dmx::DmxSettings;
use rockontrol_engine::{EnginePlugin, ShowClock, ShowEngine, load_show};
use rockontrol_net::auth::Keys;
use rockontrol_net::config::{NodeConfig, Role, Syntax};
use rockontrol_net::master::MasterNet;
use rockontrol_net::protocol::{self, Hello, ToMaster, ToReceiver};
use rockontrol_net::receiver::plugin::detach_link;
use rockontrol_net::receiver::{LinkEvent, MasterAddress};
use rockontrol_net::registry::{Admitted, LinkAuth, MonoClock, Peer, Refusal};
use rockontrol_net::{MasterPlugin, ReceiverNet, ReceiverPlugin};
use rockontrol_replicate::ReplicationRules;
use rockontrol_show::Show;
use tokio::sync::mpsc;

const KEY: &str = "memory-rig-key";

/// Says which of the master's frames a receiver loses.
pub type DropFilter = Box<dyn FnMut(&ToReceiver) -> bool>;

/// What a receiver app adds to itself before its plugins are built (a test-only part, say).
pub type Setup = fn(&mut App);

/// The master and its receivers.
pub struct Rig {
    pub master: App,
    pub receivers: Vec<Remote>,
    /// The registry's monotonic clock (heartbeat silence, ack timeouts).
    pub clock: MonoClock,
    /// Wall time passed to the registry.
    pub now: SystemTime,
    dir: PathBuf,
}

/// One receiver app and its in-memory link.
pub struct Remote {
    pub app: App,
    pub node_id: String,
    /// Into the receiver (what its link would report).
    events: mpsc::Sender<LinkEvent>,
    /// Out of the receiver (what its link would send).
    out: mpsc::Receiver<ToMaster>,
    /// While linked: the connection id and the master's frames for it.
    link: Option<(u64, mpsc::Receiver<Arc<str>>)>,
    shows_sent: BTreeSet<String>,
    /// Frames the master sent that the test drops (a lost frame).
    pub drop_if: Option<DropFilter>,
    /// Every message this receiver sent the master, in order.
    pub sent: Vec<ToMaster>,
}

/// The engine of a node, DMX output off, one tick per update. Not `rockontrol_net::app`'s
/// role assembly: the rig runs each app's `Setup` (a test-only part) between the engine and
/// the role's plugin, replaces the transport, and needs no output or loop.
fn engine_app() -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(EnginePlugin)
        // Every node app has it (net's `app` adds it): its tempo part is in the base protocol.
        .add_plugins(rockontrol_timecode::TimecodePlugin::default())
        .insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .insert_resource(DmxSettings {
            enabled: false,
            ..DmxSettings::default()
        });
    app
}

/// A master app (`master-mem`) running `show`, set up by `setup` before its net plugin, with
/// its stage saved in `state_dir` when given (a restart test builds a second one on it).
pub fn master_app(show: &Show, setup: Setup, state_dir: Option<PathBuf>) -> App {
    let mut text = r#"{"role": "master", "node_id": "master-mem", "listen_port": 0,
        "broadcast_enabled": false"#
        .to_string();
    if let Some(dir) = &state_dir {
        text += &format!(r#", "state_dir": {:?}"#, dir.display().to_string());
    }
    text += "}";
    let config = match NodeConfig::parse(&text, Syntax::Json, "memory master") {
        Ok(NodeConfig::Master(m)) => m,
        other => panic!("master config: {other:?}"),
    };
    let mut master = engine_app();
    setup(&mut master);
    master.add_plugins(MasterPlugin {
        config,
        keys: Keys {
            control: vec![KEY.into()],
            read_only: Vec::new(),
        },
        // No socket: the rig is the transport.
        listener: std::sync::Mutex::new(None),
        tls: None,
    });
    load_show(master.world_mut(), show);
    master
}

impl Rig {
    /// A master running `show` and receivers `node-01`… (not linked yet), each set up by
    /// `setup` (the master too) before the net plugins are added.
    pub fn new(name: &str, show: &Show, receivers: usize, setup: Setup) -> Self {
        let dir =
            std::env::temp_dir().join(format!("rockontrol-memory-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("state dir");
        let master = master_app(show, setup, None);
        let clock = MonoClock::manual();
        master
            .world()
            .resource::<MasterNet>()
            .shared
            .registry()
            .set_clock(clock.clone());
        let receivers = (1..=receivers)
            .map(|i| Remote::new(&format!("node-{i:02}"), i as u16, &dir, setup))
            .collect();
        Rig {
            master,
            receivers,
            clock,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            dir,
        }
    }

    /// Links receiver `i` (its hello, with its app's protocol hash, as a keyed node).
    pub fn connect(&mut self, i: usize) -> Result<u64, Refusal> {
        let remote = &mut self.receivers[i];
        let hash = remote
            .app
            .world()
            .get_resource::<ReplicationRules>()
            .map(ReplicationRules::protocol_hash)
            .unwrap_or_default();
        let hello = Hello {
            node_id: remote.node_id.clone(),
            role: Role::Receiver,
            version: protocol::VERSION.into(),
            protocol: protocol::PROTOCOL_VERSION,
            protocol_hash: hash,
            capabilities: vec![],
            universes: vec![],
            auth: None,
        };
        let addr: SocketAddr = format!("127.0.0.{}:4000", i + 2).parse().expect("address");
        let (tx, rx) = mpsc::channel(4096);
        let admitted = {
            let mut reg = self
                .master
                .world()
                .resource::<MasterNet>()
                .shared
                .registry();
            let admitted = reg.hello(
                &hello,
                &Peer {
                    addr,
                    auth: LinkAuth::ControlKey,
                },
                self.now,
            )?;
            // The master's own transport half: the registry's frames for this connection go
            // into `tx` when the guard drops.
            reg.attach(admitted.conn_id(), tx);
            admitted
        };
        let conn = admitted.conn_id();
        assert!(matches!(admitted, Admitted::Linked(_)), "{admitted:?}");
        remote.link = Some((conn, rx));
        remote.shows_sent.clear();
        let _ = remote.events.try_send(LinkEvent::Connected(addr));
        Ok(conn)
    }

    /// Cuts receiver `i`'s link (both sides notice).
    pub fn disconnect(&mut self, i: usize) {
        let remote = &mut self.receivers[i];
        if let Some((conn, _)) = remote.link.take() {
            self.master
                .world()
                .resource::<MasterNet>()
                .shared
                .registry()
                .disconnect(&remote.node_id, conn, self.now);
            let _ = remote
                .events
                .try_send(LinkEvent::Disconnected("cut by the test".into()));
        }
    }

    /// One tick everywhere: the master, then the frames it sent, then every receiver, then
    /// what they sent back.
    pub fn step(&mut self) {
        self.master.update();
        self.pump_to_receivers();
        for r in &mut self.receivers {
            r.app.update();
        }
        self.pump_to_master();
    }

    /// Steps until `done` holds, at most `max` ticks (a few milliseconds apart, for the
    /// receivers' durable acknowledgements). Panics naming `what` if it never does.
    pub fn step_until(&mut self, max: u32, what: &str, mut done: impl FnMut(&mut Rig) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.step();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(done(self), "not within {max} ticks: {what}");
    }

    fn pump_to_receivers(&mut self) {
        let (hash, ron) = self.registry().show().unzip();
        for r in &mut self.receivers {
            let Some((_, frames)) = &mut r.link else {
                continue;
            };
            while let Ok(frame) = frames.try_recv() {
                let msg = protocol::decode_to_receiver(&frame).expect("the master's frames decode");
                if r.drop_if.as_mut().is_some_and(|drop| drop(&msg)) {
                    continue;
                }
                // The link fetches a show it has not seen before passing the message on.
                let named = match &msg {
                    ToReceiver::Snapshot(s) => s.show_hash.clone(),
                    ToReceiver::Welcome(w) => w.show_hash.clone(),
                    _ => None,
                };
                if let (Some(named), Some(ron), Some(hash)) = (named, &ron, &hash)
                    && named == *hash
                    && r.shows_sent.insert(named.clone())
                {
                    let _ = r.events.try_send(LinkEvent::Show {
                        hash: named,
                        ron: ron.to_string(),
                    });
                }
                let _ = r.events.try_send(LinkEvent::Message(msg));
            }
        }
    }

    fn pump_to_master(&mut self) {
        let tick = self.master.world().resource::<ShowClock>().next_tick;
        let net = self.master.world().resource::<MasterNet>();
        for r in &mut self.receivers {
            while let Ok(msg) = r.out.try_recv() {
                r.sent.push(msg.clone());
                if r.link.is_some() {
                    let _ = net
                        .shared
                        .registry()
                        .receive(&r.node_id, msg, tick, self.now);
                }
            }
        }
    }

    /// The master's playback state.
    pub fn master_state(&self) -> Option<rockontrol_engine::PlaybackState> {
        self.master.world().resource::<ShowEngine>().state.clone()
    }

    /// Receiver `i`'s playback state.
    pub fn state(&self, i: usize) -> Option<rockontrol_engine::PlaybackState> {
        self.receivers[i]
            .app
            .world()
            .resource::<ShowEngine>()
            .state
            .clone()
    }

    /// Receiver `i`'s network side.
    pub fn net(&self, i: usize) -> &ReceiverNet {
        self.receivers[i].app.world().resource::<ReceiverNet>()
    }

    /// The master's registry, locked.
    pub fn registry(&self) -> rockontrol_net::master::RegistryGuard<'_> {
        self.master
            .world()
            .resource::<MasterNet>()
            .shared
            .registry()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Remote {
    fn new(node_id: &str, universe: u16, dir: &std::path::Path, setup: Setup) -> Self {
        let text = format!(
            r#"{{"role": "receiver", "node_id": "{node_id}", "master_ip": "127.0.0.1",
                "master_port": 1, "local_universes": [{universe}]}}"#
        );
        let config = match NodeConfig::parse(&text, Syntax::Json, "memory receiver") {
            Ok(NodeConfig::Receiver(r)) => r,
            other => panic!("receiver config: {other:?}"),
        };
        let mut app = engine_app();
        setup(&mut app);
        app.add_plugins(ReceiverPlugin {
            config,
            key: Some(KEY.into()),
            master: MasterAddress::Fixed("127.0.0.1:1".parse().expect("address")),
            state_dir: dir.join(node_id),
            known_show: None,
        });
        load_show(app.world_mut(), &Show::empty("(waiting for the master)"));
        let (events, out) = detach_link(app.world_mut()).expect("the link is not started yet");
        Remote {
            app,
            node_id: node_id.into(),
            events,
            out,
            link: None,
            shows_sent: BTreeSet::new(),
            drop_if: None,
            sent: Vec::new(),
        }
    }
}
