//! The node view's model without a window: a real `MasterPlugin` registry with a node linked
//! through the registry's own hello (its frames read from the link's channel, its acks given
//! back), and the view's actions as the widgets push them. Complements `nodes_windowed`
//! (which needs Xvfb) with exact checks of conflicts, the master's own universes and the
//! connection test.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bevy::prelude::*;
use rockontrol_dmx::DmxSettings;
use rockontrol_net::auth::Keys;
use rockontrol_net::config::Role;
use rockontrol_net::protocol::{
    self, AckStatus, Hello, Metrics, NodeCommand, ToReceiver, decode_to_receiver,
};
use rockontrol_net::registry::{LinkAuth, NodeState, Peer};
use rockontrol_net::{MasterNet, MasterPlugin};
use rockontrol_show::parse_show;
use rockontrol_ui::nodes::{NodeAction, NodeActions, NodesModel, ProbeResult, model_plugin};
use rockontrol_ui::scenes::master_config;
use tokio::sync::mpsc;

const DEMO: &str = include_str!("../../../shows/demo.ron");

/// A headless master (the role's one assembly, [`rockontrol_net::app::master_app`]) running
/// the demo, DMX output off, with the node view's model.
fn app() -> App {
    app_with(master_config("master"))
}

/// [`app`] with `config`.
fn app_with(config: rockontrol_net::MasterConfig) -> App {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let mut app = rockontrol_net::app::headless();
    rockontrol_net::app::master_app(
        &mut app,
        MasterPlugin {
            config,
            keys: Keys {
                control: vec!["test-key-1234".into()],
                read_only: Vec::new(),
            },
            listener: std::sync::Mutex::new(Some(listener)),
            tls: None,
        },
        DmxSettings {
            enabled: false,
            only_universes: Some(Vec::new()),
            ..DmxSettings::default()
        },
        Some(&parse_show(DEMO, "demo.ron").expect("demo parses")),
    );
    app.configure_sets(Update, rockontrol_ui::UiSystems::Actions);
    model_plugin(&mut app);
    app
}

/// Links `node_id` through the registry as its WebSocket handler would (its frames go to the
/// returned channel).
fn link(app: &mut App, node_id: &str) -> mpsc::Receiver<Arc<str>> {
    let (tx, rx) = mpsc::channel(1024);
    let hello = Hello {
        node_id: node_id.into(),
        role: Role::Receiver,
        version: protocol::VERSION.into(),
        protocol: protocol::PROTOCOL_VERSION,
        protocol_hash: protocol::protocol_hash(),
        capabilities: vec![],
        universes: vec![],
        auth: None,
    };
    let mut reg = app.world().resource::<MasterNet>().shared.registry();
    let admitted = reg
        .hello(
            &hello,
            &Peer {
                addr: "127.0.0.1:40000".parse().expect("address"),
                auth: LinkAuth::ControlKey,
            },
            SystemTime::now(),
        )
        .expect("hello accepted");
    reg.attach(admitted.conn_id(), tx);
    drop(reg);
    rx
}

/// Runs frames until the model has been refreshed (it reads the registry every 250 ms);
/// stage-pars keeps sending heartbeats meanwhile.
fn settle(app: &mut App) {
    let _ = app
        .world()
        .resource::<MasterNet>()
        .shared
        .registry()
        .heartbeat("stage-pars", Metrics::default(), SystemTime::now());
    app.update();
    std::thread::sleep(Duration::from_millis(300));
    app.update();
}

fn act(app: &mut App, action: NodeAction) {
    app.world_mut().resource_mut::<NodeActions>().0.push(action);
    settle(app);
}

/// Acknowledges every command waiting on the link, as the node would; returns them.
fn ack_all(app: &mut App, rx: &mut mpsc::Receiver<Arc<str>>, node_id: &str) -> Vec<NodeCommand> {
    let mut done = Vec::new();
    while let Ok(frame) = rx.try_recv() {
        if let Ok(ToReceiver::Command {
            command_id,
            command,
            ..
        }) = decode_to_receiver(&frame)
        {
            app.world()
                .resource::<MasterNet>()
                .shared
                .registry()
                .ack(
                    node_id,
                    &command_id,
                    AckStatus::Executed,
                    None,
                    SystemTime::now(),
                )
                .expect("known node");
            done.push(command);
        }
    }
    done
}

#[test]
fn states_conflicts_master_universes_and_connection_test() {
    let mut app = app();
    let mut rx = link(&mut app, "stage-pars");
    settle(&mut app);
    {
        let model = app.world().resource::<NodesModel>();
        let state = |id: &str| model.node(id).map(|n| n.state);
        assert_eq!(state("stage-pars"), Some(NodeState::Online), "linked");
        assert_eq!(
            state("stage-spots"),
            Some(NodeState::Offline),
            "never linked"
        );
        assert_eq!(
            model.universes,
            vec![1, 2, 3],
            "show and assigned universes"
        );
        assert!(model.conflicts.is_empty(), "{:?}", model.conflicts);
        assert!(
            model.master_universes.is_empty(),
            "every show universe has a node: {:?}",
            model.master_universes
        );
    }

    // Universe 1 to balcony as well: a conflict, with an alert.
    act(
        &mut app,
        NodeAction::Assign {
            node: "balcony".into(),
            universe: 1,
            on: true,
        },
    );
    {
        let model = app.world().resource::<NodesModel>();
        assert_eq!(model.conflicts.iter().copied().collect::<Vec<_>>(), vec![1]);
        assert!(
            model.alerts.iter().any(|a| a.message
                == "universe conflict: universe 1 is assigned to balcony and stage-pars"),
            "{:?}",
            model.alerts
        );
    }
    // Universe 2 taken from stage-spots: the master outputs it itself.
    act(
        &mut app,
        NodeAction::Assign {
            node: "stage-spots".into(),
            universe: 2,
            on: false,
        },
    );
    assert_eq!(
        app.world().resource::<NodesModel>().master_universes,
        vec![2]
    );
    assert_eq!(
        app.world().resource::<DmxSettings>().only_universes,
        Some(vec![2]),
        "the master's DMX output follows the matrix"
    );
    // Assignment changes of a linked node wait for its next link.
    act(
        &mut app,
        NodeAction::Assign {
            node: "stage-pars".into(),
            universe: 3,
            on: true,
        },
    );
    let pars = app
        .world()
        .resource::<NodesModel>()
        .node("stage-pars")
        .cloned()
        .expect("stage-pars");
    assert_eq!(pars.universes, vec![1, 3]);
    assert!(
        pars.needs_relink,
        "a linked node learns its universes when it relinks"
    );

    // Test connection: a ping, timed until its ack (it changes nothing on stage).
    act(&mut app, NodeAction::TestConnection("stage-pars".into()));
    assert_eq!(
        app.world()
            .resource::<NodesModel>()
            .last_probe
            .get("stage-pars"),
        Some(&ProbeResult::Running)
    );
    let sent = ack_all(&mut app, &mut rx, "stage-pars");
    assert!(
        sent == vec![NodeCommand::Ping {}],
        "the probe is a ping and nothing else: {sent:?}"
    );
    settle(&mut app);
    match app
        .world()
        .resource::<NodesModel>()
        .last_probe
        .get("stage-pars")
    {
        Some(ProbeResult::RoundTrip(d)) => assert!(*d < Duration::from_secs(3), "{d:?}"),
        other => panic!("expected a round trip, got {other:?}"),
    }
    // A node that is not linked cannot be tested.
    act(&mut app, NodeAction::TestConnection("balcony".into()));
    assert!(
        matches!(
            app.world().resource::<NodesModel>().last_probe.get("balcony"),
            Some(ProbeResult::Failed(e)) if e.contains("not connected")
        ),
        "{:?}",
        app.world().resource::<NodesModel>().last_probe
    );

    // Identify and Restart node are node commands on the link (the node does the work).
    act(&mut app, NodeAction::Identify("stage-pars".into()));
    act(&mut app, NodeAction::RestartNode("stage-pars".into()));
    let sent = ack_all(&mut app, &mut rx, "stage-pars");
    assert_eq!(
        sent,
        vec![
            NodeCommand::Identify {
                seconds: protocol::IDENTIFY_SECONDS
            },
            NodeCommand::Restart {},
        ],
        "one identify command, then one restart command"
    );

    // Restart link: the node is cut off and shown offline.
    act(&mut app, NodeAction::RestartLink("stage-pars".into()));
    std::thread::sleep(Duration::from_millis(300));
    settle(&mut app);
    assert_eq!(
        app.world()
            .resource::<NodesModel>()
            .node("stage-pars")
            .map(|n| n.state),
        Some(NodeState::Offline)
    );
}

/// The node view lists the audit log's latest control actions: who (key name and role), what,
/// the status and, for a refusal, why.
#[test]
fn the_node_view_lists_the_latest_control_actions() {
    use rockontrol_net::audit::Record;
    use rockontrol_net::roles::{Caller, Role as KeyRole};
    let dir = std::env::temp_dir().join(format!("rk-ui-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = master_config("master");
    config.state_dir = Some(dir.clone());
    let mut app = app_with(config);
    settle(&mut app);
    assert!(
        app.world().resource::<NodesModel>().audit.is_empty(),
        "a new master has done nothing yet"
    );
    let shared = Arc::clone(&app.world().resource::<MasterNet>().shared);
    shared.audit(Record {
        caller: Some(Caller {
            key_id: "0011223344556677".into(),
            name: "desk".into(),
            role: KeyRole::Operator,
            limits: Default::default(),
            peer: Some("127.0.0.1:40001".parse().expect("address")),
        }),
        peer: None,
        action: "restart command to stage-pars".into(),
        status: 403,
        reason: Some("the admin role is needed".into()),
    });
    settle(&mut app);
    let model = app.world().resource::<NodesModel>();
    let last = model.audit.last().expect("listed");
    assert_eq!(
        (
            last.name.as_deref(),
            last.role,
            last.action.as_str(),
            last.status,
            last.reason.as_deref(),
            last.peer.as_deref()
        ),
        (
            Some("desk"),
            Some(KeyRole::Operator),
            "restart command to stage-pars",
            403,
            Some("the admin role is needed"),
            Some("127.0.0.1:40001")
        )
    );
    // The console's own control actions are recorded too, with their outcome.
    act(&mut app, NodeAction::Identify("nobody".into()));
    let model = app.world().resource::<NodesModel>();
    let last = model.audit.last().expect("listed");
    assert_eq!(
        (last.name.as_deref(), last.action.as_str(), last.status),
        (
            Some("master console (node view)"),
            "node view: Identify(\"nobody\")",
            422
        ),
        "{last:?}"
    );
    assert!(
        last.reason.as_deref().is_some_and(|r| r.contains("nobody")),
        "{last:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
