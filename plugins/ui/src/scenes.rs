//! A master or receiver window with real peer nodes on loopback: what the node-view tests,
//! the README screenshots and the master benchmark run.
//!
//! Peers are whole headless nodes (engine, DMX output, [`MasterPlugin`] or [`ReceiverPlugin`])
//! running their own Bevy app on a named thread of this process, linked to the window's node
//! over real WebSockets on 127.0.0.1. Stopping a peer ends its app and drops its sockets, as a
//! node that goes away would.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use rockontrol_dmx::{DmxPlugin, DmxSettings};
use rockontrol_engine::{Command, CommandQueue, EnginePlugin, load_show};
use rockontrol_net::auth::Keys;
use rockontrol_net::client::MasterAddress;
use rockontrol_net::config::{MasterConfig, NodeConfig, ReceiverConfig, Syntax};
use rockontrol_net::{MasterPlugin, ReceiverPlugin};
use rockontrol_show::Show;

use crate::NodeView;
use crate::script::{UiScript, scripted_view_app};

/// The control key every scene node uses.
pub const SCENE_KEY: &str = "rockontrol-ui-scene-key";

/// The master scene's receivers: (node id, universes). The last is configured but never runs,
/// so it is offline.
pub const SCENE_NODES: [(&str, &[u16]); 3] = [
    ("stage-pars", &[1]),
    ("stage-spots", &[2]),
    ("balcony", &[3]),
];
/// Of [`SCENE_NODES`], how many are started.
pub const SCENE_RUNNING: usize = 2;

/// A peer node on its own thread; stopped when dropped.
#[derive(Debug)]
pub struct PeerNode {
    pub name: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerNode {
    /// Stops the node and waits for its app to end.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("peer node {} panicked", self.name);
        }
    }
}

impl Drop for PeerNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The peers of a scene, stopped with the app.
#[derive(Resource, Debug, Default)]
pub struct ScenePeers(pub Vec<PeerNode>);

impl ScenePeers {
    /// Stops the peer called `name`; false if there is none.
    pub fn stop(&mut self, name: &str) -> bool {
        match self.0.iter().position(|p| p.name == name) {
            Some(i) => {
                self.0.remove(i).stop();
                true
            }
            None => false,
        }
    }
}

#[derive(Resource)]
struct StopFlag(Arc<AtomicBool>);

fn stop_when_asked(flag: Res<StopFlag>, mut exit: MessageWriter<AppExit>) {
    if flag.0.load(Ordering::SeqCst) {
        exit.write(AppExit::Success);
    }
}

fn scene_dir() -> PathBuf {
    std::env::temp_dir().join(format!("rockontrol-ui-scene-{}", std::process::id()))
}

/// A headless node app (engine + DMX + stop flag) on a 2 ms loop, as `rockontrol` runs one.
fn headless_node(stop: &Arc<AtomicBool>, only_universes: Vec<u16>) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(2))))
        .add_plugins(EnginePlugin)
        .add_plugins(DmxPlugin)
        .insert_resource(DmxSettings {
            only_universes: Some(only_universes),
            input_sacn_port: 0,
            ..DmxSettings::default()
        })
        .insert_resource(StopFlag(Arc::clone(stop)))
        .add_systems(Update, stop_when_asked);
    app.world_mut()
        .resource_mut::<Time<Virtual>>()
        .set_max_delta(Duration::from_secs(5));
    app
}

fn spawn_peer(name: &str, build: impl FnOnce(Arc<AtomicBool>) -> App + Send + 'static) -> PeerNode {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(format!("peer-{name}"))
        .spawn(move || {
            let mut app = build(flag);
            app.run();
        })
        .map_err(|e| error!("cannot start peer node {name}: {e}"))
        .ok();
    PeerNode {
        name: name.to_string(),
        stop,
        thread,
    }
}

/// A receiver's configuration: fixed master address, sACN redirected to a closed loopback port.
pub fn receiver_config(node_id: &str, universes: &[u16], master: SocketAddr) -> ReceiverConfig {
    let text = format!(
        r#"{{"role": "receiver", "node_id": "{node_id}", "master_ip": "{}", "master_port": {},
  "local_universes": {universes:?}, "capabilities": ["dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9"}}"#,
        master.ip(),
        master.port()
    );
    match NodeConfig::parse(&text, Syntax::Json, "scene receiver") {
        Ok(NodeConfig::Receiver(r)) => r,
        other => panic!("scene receiver config: {other:?}"),
    }
}

/// A master configuration managing [`SCENE_NODES`].
pub fn master_config(node_id: &str) -> MasterConfig {
    let managed: Vec<String> = SCENE_NODES
        .iter()
        .map(|(id, u)| {
            format!(
                r#"{{"node_id": "{id}", "ip": "127.0.0.1", "universe_map": {u:?}, "role": "dmx_output"}}"#
            )
        })
        .collect();
    let text = format!(
        r#"{{"role": "master", "node_id": "{node_id}", "listen_port": 0, "bind": "127.0.0.1",
  "broadcast_enabled": false, "managed_nodes": [{}]}}"#,
        managed.join(",")
    );
    match NodeConfig::parse(&text, Syntax::Json, "scene master") {
        Ok(NodeConfig::Master(m)) => m,
        other => panic!("scene master config: {other:?}"),
    }
}

fn keys() -> Keys {
    Keys {
        control: vec![SCENE_KEY.to_string()],
        read_only: Vec::new(),
    }
}

/// A headless receiver linked to `master`.
pub fn spawn_receiver(node_id: &str, universes: &[u16], master: SocketAddr) -> PeerNode {
    let config = receiver_config(node_id, universes, master);
    let universes = universes.to_vec();
    spawn_peer(node_id, move |stop| {
        let mut app = headless_node(&stop, universes);
        let state_dir = scene_dir().join(&config.node_id);
        app.add_plugins(ReceiverPlugin {
            config,
            key: Some(SCENE_KEY.to_string()),
            master: MasterAddress::Fixed(master),
            state_dir,
            known_show: None,
        });
        load_show(app.world_mut(), &Show::empty("(waiting for the master)"));
        app
    })
}

/// A headless master running `show` (GO on its first playback after one second, and on a
/// second playback, if any, after two), managing [`SCENE_NODES`].
pub fn spawn_master(show: &Show) -> std::io::Result<(PeerNode, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let show = show.clone();
    let peer = spawn_peer("master", move |stop| {
        let mut app = headless_node(&stop, Vec::new());
        app.add_plugins(MasterPlugin {
            config: master_config("scene-master"),
            keys: keys(),
            listener: std::sync::Mutex::new(Some(listener)),
        });
        load_show(app.world_mut(), &show);
        let mut queue = app.world_mut().resource_mut::<CommandQueue>();
        for (i, pb) in show.playbacks.iter().take(2).enumerate() {
            queue.at(
                44 * (i as u64 + 1),
                Command::Go {
                    playback: pb.name.clone(),
                    fade: None,
                },
            );
        }
        app
    });
    Ok((peer, addr))
}

/// The master window (programmer and node view) running `show`, with a real
/// [`MasterPlugin`] on 127.0.0.1 and the first [`SCENE_RUNNING`] of [`SCENE_NODES`] running as
/// headless receivers linked to it.
pub fn master_scene(show: &Show, show_path: Option<PathBuf>, script: UiScript) -> App {
    let mut app = scripted_view_app(show, show_path, script, NodeView::Master);
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(l) => l,
        Err(e) => panic!("cannot listen on 127.0.0.1: {e}"),
    };
    let addr = listener.local_addr().ok();
    app.add_plugins(DmxPlugin)
        .insert_resource(DmxSettings {
            only_universes: Some(Vec::new()),
            input_sacn_port: 0,
            ..DmxSettings::default()
        })
        .add_plugins(MasterPlugin {
            config: master_config("master"),
            keys: keys(),
            listener: std::sync::Mutex::new(Some(listener)),
        });
    let mut peers = ScenePeers::default();
    if let Some(addr) = addr {
        for (id, universes) in SCENE_NODES.iter().take(SCENE_RUNNING) {
            peers.0.push(spawn_receiver(id, universes, addr));
        }
    }
    app.insert_resource(peers);
    app
}

/// The receiver window (`stage-pars`, universe 1) linked to a headless master running `show`
/// (the peer called "master").
pub fn receiver_scene(show: &Show, script: UiScript) -> App {
    let (master, addr) = match spawn_master(show) {
        Ok(m) => m,
        Err(e) => panic!("cannot start the scene's master: {e}"),
    };
    let (node_id, universes) = SCENE_NODES[0];
    let mut app = scripted_view_app(
        &Show::empty("(waiting for the master)"),
        None,
        script,
        NodeView::Receiver,
    );
    let config = receiver_config(node_id, universes, addr);
    app.add_plugins(DmxPlugin)
        .insert_resource(DmxSettings {
            only_universes: Some(universes.to_vec()),
            input_sacn_port: 0,
            ..DmxSettings::default()
        })
        .add_plugins(ReceiverPlugin {
            config,
            key: Some(SCENE_KEY.to_string()),
            master: MasterAddress::Fixed(addr),
            state_dir: scene_dir().join("window-receiver"),
            known_show: None,
        })
        .insert_resource(ScenePeers(vec![master]));
    app
}
