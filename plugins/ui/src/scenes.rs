//! A master or receiver window with real peer nodes on loopback: what the node-view tests,
//! the README screenshots and the master benchmark run.
//!
//! Peers are whole headless nodes (engine, DMX output, [`MasterPlugin`] or [`ReceiverPlugin`])
//! running their own Bevy app on a named thread of this process, linked to the window's node
//! over real WebSockets on 127.0.0.1. Stopping a peer ends its app and drops its sockets, as a
//! node that goes away would.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::prelude::*;
use rockontrol_dmx::DmxSettings;
use rockontrol_engine::{Command, CommandQueue};
use rockontrol_net::auth::Keys;
use rockontrol_net::config::{MasterConfig, NodeConfig, ReceiverConfig, Syntax};
use rockontrol_net::receiver::MasterAddress;
use rockontrol_net::{MasterPlugin, ReceiverPlugin};
use rockontrol_show::Show;

use bevy_egui::egui;
use rockontrol_engine::{LatestFrame, Programmer};
use rockontrol_net::ReceiverNet;
use rockontrol_net::protocol::NodeCommand;
use rockontrol_net::registry::NodeState;

use crate::NodeView;
use crate::nodes::{
    ASSIGNED, CONFLICT, DEGRADED, FREE, NodeAction, NodeActions, NodeViewLayout, NodesModel,
    OFFLINE, ONLINE, ProbeResult, UiPage,
};
use crate::receiver::{
    PingResult, ReceiverAction, ReceiverActions, ReceiverLayout, ReceiverView, reconnect_in,
};
use crate::script::{LastScreenshot, ScriptStep, UiScript, rgb_image, scripted_view_app};

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

/// A headless node app's process part (loop and stop flag), as `rockontrol` runs one; the
/// role is added by [`rockontrol_net::app`].
fn headless_node(stop: &Arc<AtomicBool>) -> App {
    let mut app = rockontrol_net::app::headless();
    app.insert_resource(StopFlag(Arc::clone(stop)))
        .add_systems(Update, stop_when_asked);
    app
}

/// DMX output settings of a scene node: only `only_universes`, no sACN input.
fn scene_dmx(only_universes: Vec<u16>) -> DmxSettings {
    DmxSettings {
        only_universes: Some(only_universes),
        input_sacn_port: 0,
        ..DmxSettings::default()
    }
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

/// A receiver's configuration: fixed master address, sACN redirected to a closed loopback port;
/// plaintext, as the scenes' in-process masters serve (`tls: None`).
pub fn receiver_config(node_id: &str, universes: &[u16], master: SocketAddr) -> ReceiverConfig {
    let text = format!(
        r#"{{"role": "receiver", "node_id": "{node_id}", "master_ip": "{}", "master_port": {},
  "local_universes": {universes:?}, "capabilities": ["dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9", "insecure": true}}"#,
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
        let mut app = headless_node(&stop);
        let state_dir = scene_dir().join(&config.node_id);
        let receiver = ReceiverPlugin {
            config,
            key: Some(SCENE_KEY.to_string()),
            master: MasterAddress::Fixed(master),
            state_dir,
            known_show: None,
        };
        rockontrol_net::app::receiver_app(
            &mut app,
            receiver,
            scene_dmx(universes),
            Some(&Show::empty("(waiting for the master)")),
        );
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
        let mut app = headless_node(&stop);
        let master = MasterPlugin {
            config: master_config("scene-master"),
            keys: keys(),
            listener: std::sync::Mutex::new(Some(listener)),
            tls: None,
        };
        rockontrol_net::app::master_app(&mut app, master, scene_dmx(Vec::new()), Some(&show));
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
    let master = MasterPlugin {
        config: master_config("master"),
        keys: keys(),
        listener: std::sync::Mutex::new(Some(listener)),
        tls: None,
    };
    // The window's app loaded the show already.
    rockontrol_net::app::master_app(&mut app, master, scene_dmx(Vec::new()), None);
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
    let receiver = ReceiverPlugin {
        config,
        key: Some(SCENE_KEY.to_string()),
        master: MasterAddress::Fixed(addr),
        state_dir: scene_dir().join("window-receiver"),
        known_show: None,
    };
    rockontrol_net::app::receiver_app(&mut app, receiver, scene_dmx(universes.to_vec()), None);
    app.insert_resource(ScenePeers(vec![master]));
    app
}

fn check(
    name: &str,
    f: impl FnMut(&mut World) -> Result<(), String> + Send + Sync + 'static,
) -> ScriptStep {
    ScriptStep::Run(name.to_string(), Box::new(f))
}

fn wait_until(
    name: &str,
    timeout: Duration,
    f: impl FnMut(&mut World) -> Result<(), String> + Send + Sync + 'static,
) -> ScriptStep {
    ScriptStep::WaitUntil(name.to_string(), timeout, Box::new(f))
}

/// Clicks a point of the node view's last drawn layout.
fn click_layout(
    name: &str,
    find: impl Fn(&NodeViewLayout) -> Option<UVec2> + Send + Sync + 'static,
) -> ScriptStep {
    let what = name.to_string();
    ScriptStep::Click(
        name.to_string(),
        Box::new(move |w| {
            let scale = w
                .query::<&Window>()
                .iter(w)
                .next()
                .map_or(1.0, |win| win.scale_factor());
            let p = find(w.resource::<NodeViewLayout>()).ok_or(format!("{what} is not drawn"))?;
            Ok(p.as_vec2() / scale)
        }),
    )
}

/// Pushes a node-view action, as its widget does.
pub fn node_act(action: NodeAction) -> ScriptStep {
    check(&format!("{action:?}"), move |w| {
        w.resource_mut::<NodeActions>().0.push(action.clone());
        Ok(())
    })
}

/// Pushes a receiver-view action, as its widget does.
pub fn receiver_act(action: ReceiverAction) -> ScriptStep {
    check(&format!("{action:?}"), move |w| {
        w.resource_mut::<ReceiverActions>().0.push(action);
        Ok(())
    })
}

/// True when two colours differ by at most `tolerance` in every channel.
pub fn close(pixel: [u8; 3], colour: egui::Color32, tolerance: u8) -> bool {
    pixel
        .iter()
        .zip([colour.r(), colour.g(), colour.b()])
        .all(|(a, b)| a.abs_diff(b) <= tolerance)
}

fn pixel_at(w: &World, at: UVec2) -> Result<[u8; 3], String> {
    let shot = rgb_image(&w.resource::<LastScreenshot>().0)?;
    if at.x >= shot.width() || at.y >= shot.height() {
        return Err(format!("{at} is outside the screenshot"));
    }
    Ok(shot.get_pixel(at.x, at.y).0)
}

/// The screenshot pixel at a node's disc is `colour`.
fn node_drawn(w: &World, node: &str, colour: egui::Color32, what: &str) -> Result<(), String> {
    let at = *w
        .resource::<NodeViewLayout>()
        .nodes
        .get(node)
        .ok_or(format!("{node} is not in the topology"))?;
    let p = pixel_at(w, at)?;
    if close(p, colour, 30) {
        Ok(())
    } else {
        Err(format!(
            "{node} at {at}: expected {what} {colour:?}, pixel is {p:?}"
        ))
    }
}

/// The screenshot pixel of a matrix cell is `colour`.
fn cell_drawn(
    w: &World,
    node: &str,
    universe: u16,
    colour: egui::Color32,
    what: &str,
) -> Result<(), String> {
    let at = *w
        .resource::<NodeViewLayout>()
        .cells
        .get(&(node.to_string(), universe))
        .ok_or(format!("no matrix cell {node} × {universe}"))?;
    let p = pixel_at(w, at)?;
    if close(p, colour, 30) {
        Ok(())
    } else {
        Err(format!(
            "cell {node} × universe {universe} at {at}: expected {what} {colour:?}, pixel is {p:?}"
        ))
    }
}

fn node_state(w: &World, node: &str) -> Result<NodeState, String> {
    w.resource::<NodesModel>()
        .node(node)
        .map(|n| n.state)
        .ok_or(format!("the view has no node {node}"))
}

/// The master scene as a user drives it, checking what the view shows (used by the test and
/// by `rockontrol-ui screenshots`, which saves `master.png` into `out`).
pub fn master_steps(out: Option<&Path>) -> Vec<ScriptStep> {
    let shot = |name: &str| ScriptStep::Screenshot(out.map(|o| o.join(name)));
    let before = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before_check = Arc::clone(&before);
    vec![
        ScriptStep::WaitTicks(2),
        check("open the Nodes page", |w| {
            *w.resource_mut::<UiPage>() = UiPage::Nodes;
            Ok(())
        }),
        wait_until(
            "stage-pars and stage-spots are online with heartbeats",
            Duration::from_secs(20),
            |w| {
                let model = w.resource::<NodesModel>();
                for id in ["stage-pars", "stage-spots"] {
                    let n = model.node(id).ok_or(format!("no {id}"))?;
                    if n.state != NodeState::Online || n.metrics.tick == 0 {
                        return Err(format!(
                            "{id} is {:?} with tick {}",
                            n.state, n.metrics.tick
                        ));
                    }
                }
                Ok(())
            },
        ),
        check(
            "the matrix shows the configured assignment, no conflict",
            |w| {
                let model = w.resource::<NodesModel>();
                let pars = model.node("stage-pars").ok_or("no stage-pars")?;
                if pars.universes != [1] {
                    return Err(format!(
                        "stage-pars universes {:?}, expected [1]",
                        pars.universes
                    ));
                }
                if !model.conflicts.is_empty() {
                    return Err(format!("unexpected conflicts {:?}", model.conflicts));
                }
                if node_state(w, "balcony")? != NodeState::Offline {
                    return Err("balcony never ran: expected offline".into());
                }
                Ok(())
            },
        ),
        // A few seconds of graphs and a connection test.
        node_act(NodeAction::Select("stage-pars".into())),
        node_act(NodeAction::TestConnection("stage-pars".into())),
        wait_until(
            "the connection test of stage-pars measured a round trip",
            Duration::from_secs(5),
            |w| match w.resource::<NodesModel>().last_probe.get("stage-pars") {
                Some(ProbeResult::RoundTrip(_)) => Ok(()),
                other => Err(format!("last probe: {other:?}")),
            },
        ),
        ScriptStep::Wait(Duration::from_secs(4)),
        ScriptStep::WaitFrames(3),
        ScriptStep::Screenshot(None),
        check(
            "the topology draws online nodes green and balcony red",
            |w| {
                node_drawn(w, "stage-pars", ONLINE, "online")?;
                node_drawn(w, "stage-spots", ONLINE, "online")?;
                node_drawn(w, "balcony", OFFLINE, "offline")?;
                cell_drawn(w, "stage-pars", 1, ASSIGNED, "assigned")?;
                cell_drawn(w, "balcony", 1, FREE, "free")
            },
        ),
        // Click stage-spots in the topology: it is selected.
        click_layout("the stage-spots disc", |l| {
            l.nodes.get("stage-spots").copied()
        }),
        wait_until(
            "stage-spots is selected",
            Duration::from_secs(2),
            |w| match w.resource::<NodesModel>().selected.as_deref() {
                Some("stage-spots") => Ok(()),
                other => Err(format!("selected: {other:?}")),
            },
        ),
        // Edit the matrix into a conflict: click balcony × universe 1.
        click_layout("the matrix cell balcony × 1", |l| {
            l.cells.get(&("balcony".to_string(), 1)).copied()
        }),
        wait_until(
            "universe 1 is marked as a conflict",
            Duration::from_secs(3),
            |w| {
                let model = w.resource::<NodesModel>();
                if !model.conflicts.contains(&1) {
                    return Err(format!("conflicts {:?}", model.conflicts));
                }
                if !model
                    .alerts
                    .iter()
                    .any(|a| a.message.contains("universe conflict: universe 1"))
                {
                    return Err("no conflict alert".into());
                }
                Ok(())
            },
        ),
        // A command stage-spots cannot carry out, four times: it is degraded.
        node_act(NodeAction::Command(
            "stage-spots".into(),
            NodeCommand::Release {
                playback: "no-such-playback".into(),
            },
        )),
        wait_until(
            "stage-spots is degraded after its command failed four times",
            Duration::from_secs(10),
            |w| match node_state(w, "stage-spots")? {
                NodeState::Degraded => Ok(()),
                s => Err(format!("stage-spots is {s:?}")),
            },
        ),
        node_act(NodeAction::Select("stage-pars".into())),
        ScriptStep::WaitFrames(5),
        shot("master.png"),
        check(
            "conflict cells red, stage-spots amber, stage-pars green",
            |w| {
                cell_drawn(w, "stage-pars", 1, CONFLICT, "conflict")?;
                cell_drawn(w, "balcony", 1, CONFLICT, "conflict")?;
                cell_drawn(w, "stage-spots", 2, ASSIGNED, "assigned")?;
                node_drawn(w, "stage-spots", DEGRADED, "degraded")?;
                node_drawn(w, "stage-pars", ONLINE, "online")?;
                node_drawn(w, "balcony", OFFLINE, "offline")
            },
        ),
        // Identify: one identify command, executed by the node (it flashes its fixtures).
        check("note stage-pars' executed commands", move |w| {
            let n = executed(w, "stage-pars")?;
            before.store(n, Ordering::SeqCst);
            Ok(())
        }),
        node_act(NodeAction::Identify("stage-pars".into())),
        wait_until(
            "stage-pars executed the identify command",
            Duration::from_secs(6),
            move |w| {
                let n = executed(w, "stage-pars")?;
                let was = before_check.load(Ordering::SeqCst);
                if n > was {
                    Ok(())
                } else {
                    Err(format!("executed {n}, {was} before the identify"))
                }
            },
        ),
        // Restart link: the node goes offline, reconnects by itself and is online again.
        node_act(NodeAction::RestartLink("stage-pars".into())),
        wait_until(
            "stage-pars is offline after its link was restarted",
            Duration::from_secs(4),
            |w| match node_state(w, "stage-pars")? {
                NodeState::Offline => Ok(()),
                s => Err(format!("stage-pars is {s:?}")),
            },
        ),
        wait_until(
            "stage-pars reconnected",
            Duration::from_secs(15),
            |w| match node_state(w, "stage-pars")? {
                NodeState::Online => Ok(()),
                s => Err(format!("stage-pars is {s:?}")),
            },
        ),
        ScriptStep::Exit,
    ]
}

fn executed(w: &World, node: &str) -> Result<u64, String> {
    w.resource::<NodesModel>()
        .node(node)
        .map(|n| n.executed)
        .ok_or(format!("the view has no node {node}"))
}

/// Universe 1 as the receiver's engine last output it.
fn universe_1(w: &World) -> Result<Vec<u8>, String> {
    let frame = w
        .resource::<LatestFrame>()
        .0
        .clone()
        .ok_or("no frame yet")?;
    Ok(frame.universe(1).ok_or("no universe 1")?.to_vec())
}

fn badge(w: &World, colour: egui::Color32, what: &str) -> Result<(), String> {
    let at = w
        .resource::<ReceiverLayout>()
        .badge
        .ok_or("no connection badge drawn")?;
    let p = pixel_at(w, at)?;
    if close(p, colour, 30) {
        Ok(())
    } else {
        Err(format!(
            "connection badge at {at}: expected {what} {colour:?}, pixel is {p:?}"
        ))
    }
}

/// The receiver scene as a user drives it (test and `rockontrol-ui screenshots`, which saves
/// `receiver.png` into `out`).
pub fn receiver_steps(out: Option<&Path>) -> Vec<ScriptStep> {
    let shot = |name: &str| ScriptStep::Screenshot(out.map(|o| o.join(name)));
    vec![
        ScriptStep::WaitTicks(2),
        wait_until(
            "connected, the master's show loaded and universe 1 lit by its GO",
            Duration::from_secs(20),
            |w| {
                let net = w.resource::<ReceiverNet>();
                if !net.connected || net.master_show.is_none() {
                    return Err(format!(
                        "connected {}, show {:?}",
                        net.connected, net.master_show
                    ));
                }
                let u1 = universe_1(w)?;
                if u1.iter().all(|v| *v == 0) {
                    return Err("universe 1 is dark".into());
                }
                Ok(())
            },
        ),
        receiver_act(ReceiverAction::PingMaster),
        wait_until(
            "the master answered the ping",
            Duration::from_secs(5),
            |w| match &w.resource::<ReceiverView>().ping {
                Some(PingResult::Answered(200, _)) => Ok(()),
                other => Err(format!("ping: {other:?}")),
            },
        ),
        ScriptStep::Wait(Duration::from_secs(2)),
        ScriptStep::WaitFrames(3),
        shot("receiver.png"),
        check("the badge is green while connected", |w| {
            badge(w, ONLINE, "connected")
        }),
        receiver_act(ReceiverAction::TestPattern(true)),
        wait_until(
            "the test pattern puts all 12 pars at full red on the wire",
            Duration::from_secs(3),
            |w| {
                let u1 = universe_1(w)?;
                // Pars at 1, 7, 13, …: dimmer, R, G, B, W, strobe.
                for par in 0..12 {
                    let slots = &u1[par * 6..par * 6 + 5];
                    if slots != [255, 255, 0, 0, 0] {
                        return Err(format!("Par {} is {slots:?}", par + 1));
                    }
                }
                Ok(())
            },
        ),
        receiver_act(ReceiverAction::TestPattern(false)),
        ScriptStep::WaitTicks(2),
        check("the test pattern handed the output back to the show", |w| {
            if w.resource::<Programmer>().is_empty() {
                Ok(())
            } else {
                Err("the programmer still holds test-pattern values".into())
            }
        }),
        check("stop the master", |w| {
            if w.resource_mut::<ScenePeers>().stop("master") {
                Ok(())
            } else {
                Err("no master peer".into())
            }
        }),
        wait_until(
            "the link is down with a reconnect countdown",
            Duration::from_secs(10),
            |w| {
                let net = w.resource::<ReceiverNet>();
                match reconnect_in(net) {
                    Some(d) if !d.is_zero() && !net.connected => Ok(()),
                    other => Err(format!(
                        "connected {}, reconnect in {other:?}",
                        net.connected
                    )),
                }
            },
        ),
        ScriptStep::WaitFrames(3),
        shot("receiver-lost.png"),
        check("the badge is red, the log says the master was lost", |w| {
            badge(w, OFFLINE, "master lost")?;
            let net = w.resource::<ReceiverNet>();
            if !net
                .history
                .iter()
                .any(|e| e.text.starts_with("master lost"))
            {
                return Err("no 'master lost' in the command log".into());
            }
            if !net
                .history
                .iter()
                .any(|e| e.text.starts_with("replicated: go"))
            {
                return Err(format!(
                    "no replicated GO in the command log: {:?}",
                    net.history
                ));
            }
            Ok(())
        }),
        ScriptStep::Exit,
    ]
}
