//! Replication and command queueing between a master app and receiver apps, in memory (no
//! sockets, injected time): see [`rig`].

mod rig;
#[path = "../data/seam_script.rs"]
mod seam_script;

use bevy::prelude::*;
use rockontrol_engine::{Command, CommandQueue, ShowClock};
use rockontrol_net::protocol::{self, NodeCommand, ToMaster, ToReceiver};
use rockontrol_net::registry::{Delivery, HEARTBEAT_TIMEOUT, NodeState};
use rockontrol_replicate::{AppReplicateExt, ReplicationRules};
use rockontrol_show::parse_show;
use serde::{Deserialize, Serialize};

use rig::Rig;

const SHOW: &str = include_str!("../data/seam.ron");

fn show() -> rockontrol_show::Show {
    parse_show(SHOW, "seam.ron").unwrap_or_else(|e| panic!("test show: {e}"))
}

fn nothing(_: &mut App) {}

fn go(rig: &mut Rig, playback: &str) {
    rig.master
        .world_mut()
        .resource_mut::<CommandQueue>()
        .push(Command::Go {
            playback: playback.into(),
            fade: None,
        });
}

/// Links every receiver and runs until each has the master's show and snapshot.
fn linked(rig: &mut Rig) {
    rig.step(); // the master compiles and publishes its show
    for i in 0..rig.receivers.len() {
        rig.connect(i)
            .expect("a keyed node with the same protocol is welcomed");
    }
    rig.step_until(200, "every receiver applied the master's snapshot", |rig| {
        let seq = rig.registry().seq();
        (0..rig.receivers.len())
            .all(|i| rig.net(i).replica.seq == Some(seq) && rig.state(i) == rig.master_state())
    });
}

#[test]
fn snapshot_and_deltas_reach_every_receiver_in_order() {
    let mut rig = Rig::new("order", &show(), 3, nothing);
    linked(&mut rig);
    let first = rig.registry().seq();
    go(&mut rig, "main");
    rig.step();
    go(&mut rig, "fx");
    rig.step();
    go(&mut rig, "main");
    rig.step();
    let last = rig.registry().seq();
    assert_eq!(last, first + 3, "one delta per command");
    rig.step_until(50, "every receiver is at the master's last seq", |rig| {
        (0..3).all(|i| rig.net(i).replica.seq == Some(last))
    });
    for i in 0..3 {
        assert_eq!(
            rig.state(i),
            rig.master_state(),
            "{}: the same playback state as the master after 3 deltas",
            rig.receivers[i].node_id
        );
        let history: Vec<&str> = rig
            .net(i)
            .history
            .iter()
            .filter(|h| h.text.starts_with("replicated: "))
            .map(|h| h.text.as_str())
            .collect();
        assert_eq!(
            history,
            [
                "replicated: go main",
                "replicated: go fx",
                "replicated: go main"
            ],
            "applied in the master's order"
        );
    }
    assert!(
        rig.receivers.iter().all(|r| !r
            .sent
            .iter()
            .any(|m| matches!(m, ToMaster::SnapshotRequest { .. }))),
        "no gap, no snapshot request"
    );
}

#[test]
fn a_lost_delta_makes_the_receiver_ask_for_a_snapshot_and_catch_up() {
    let mut rig = Rig::new("gap", &show(), 2, nothing);
    linked(&mut rig);
    let mut dropped = 0;
    rig.receivers[0].drop_if = Some(Box::new(move |msg| {
        let lose = matches!(msg, ToReceiver::Delta(_)) && dropped == 0;
        dropped += usize::from(lose);
        lose
    }));
    go(&mut rig, "main");
    rig.step();
    go(&mut rig, "fx");
    rig.step();
    let last = rig.registry().seq();
    rig.step_until(50, "node-01 caught up after the gap", |rig| {
        rig.net(0).replica.seq == Some(last) && rig.state(0) == rig.master_state()
    });
    let requests: Vec<&ToMaster> = rig.receivers[0]
        .sent
        .iter()
        .filter(|m| matches!(m, ToMaster::SnapshotRequest { .. }))
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "exactly one snapshot request for one gap: {requests:?}"
    );
    assert!(
        matches!(requests[0], ToMaster::SnapshotRequest { reason } if reason.contains(&format!("expected seq {}", last - 1))),
        "{requests:?}"
    );
    assert!(
        !rig.receivers[1]
            .sent
            .iter()
            .any(|m| matches!(m, ToMaster::SnapshotRequest { .. })),
        "node-02 lost nothing and asked for nothing"
    );
    assert_eq!(rig.state(1), rig.master_state());
}

#[test]
fn a_node_command_queued_offline_is_delivered_once_on_reconnect() {
    let mut rig = Rig::new("queue", &show(), 1, nothing);
    rig.step();
    // node-01 is unknown until it first links: link, then drop it.
    rig.connect(0).expect("welcomed");
    rig.step_until(100, "node-01 linked", |rig| {
        rig.net(0).replica.seq.is_some()
    });
    rig.disconnect(0);
    rig.step();
    assert_eq!(
        rig.registry().node("node-01").expect("node-01").state(),
        NodeState::Offline
    );
    let (id, delivery) = rig
        .registry()
        .submit("node-01", NodeCommand::Blackout { on: true })
        .expect("known node");
    assert_eq!(delivery, Delivery::Queued, "node-01 is offline");
    for _ in 0..5 {
        rig.step();
    }
    assert_eq!(
        rig.net(0).commands_executed,
        0,
        "nothing reaches an offline node"
    );

    rig.connect(0).expect("welcomed again");
    rig.step_until(
        200,
        "the queued command is executed and acknowledged",
        |rig| rig.registry().node("node-01").expect("node-01").executed() == 1,
    );
    assert_eq!(rig.net(0).commands_executed, 1);
    assert!(rig.net(0).node_override.blackout, "node-01 is dark");

    // A second outage (the master hears nothing for longer than the heartbeat timeout, on
    // its injected clock) and reconnect: the command is not sent, let alone run, again; the
    // snapshot still carries the override.
    rig.clock
        .advance(HEARTBEAT_TIMEOUT + std::time::Duration::from_millis(1));
    let now = rig.now;
    rig.registry().check_timeouts(now);
    assert_eq!(
        rig.registry().node("node-01").expect("node-01").state(),
        NodeState::Offline,
        "silent: offline"
    );
    rig.disconnect(0);
    rig.step();
    rig.connect(0).expect("welcomed a third time");
    for _ in 0..20 {
        rig.step();
    }
    assert_eq!(rig.net(0).commands_executed, 1, "executed once");
    assert_eq!(
        rig.registry().node("node-01").expect("node-01").executed(),
        1
    );
    assert!(rig.net(0).node_override.blackout, "from the snapshot");
    let acks: Vec<_> = rig.receivers[0]
        .sent
        .iter()
        .filter(|m| matches!(m, ToMaster::Ack { command_id, .. } if *command_id == id))
        .collect();
    assert_eq!(acks.len(), 1, "acknowledged once: {acks:?}");
}

/// A part only this test registers: net's protocol types know nothing of it.
#[derive(Resource, Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct HouseLights {
    level: u8,
    label: String,
}

fn house_lights(app: &mut App) {
    app.replicate_resource::<HouseLights>("test.house_lights");
}

#[test]
fn a_part_registered_by_another_plugin_replicates_without_touching_net() {
    let mut rig = Rig::new("extra", &show(), 2, house_lights);
    let hash = |app: &App| app.world().resource::<ReplicationRules>().protocol_hash();
    assert_eq!(hash(&rig.master), hash(&rig.receivers[0].app));
    assert_ne!(
        hash(&rig.master),
        protocol::protocol_hash(),
        "the extra part is in the protocol hash"
    );
    rig.master.world_mut().insert_resource(HouseLights {
        level: 40,
        label: "preshow".into(),
    });
    linked(&mut rig);
    rig.step_until(50, "both receivers have the house lights", |rig| {
        (0..2).all(|i| {
            rig.receivers[i].app.world().get_resource::<HouseLights>()
                == Some(&HouseLights {
                    level: 40,
                    label: "preshow".into(),
                })
        })
    });
    let seq = rig.registry().seq();
    rig.master.world_mut().resource_mut::<HouseLights>().level = 0;
    rig.step_until(50, "the change reaches both receivers", |rig| {
        (0..2).all(|i| {
            rig.receivers[i]
                .app
                .world()
                .get_resource::<HouseLights>()
                .is_some_and(|h| h.level == 0)
        })
    });
    assert_eq!(rig.registry().seq(), seq + 1, "one change, one snapshot");
    let captures = |rig: &Rig| {
        rig.master
            .world()
            .resource::<rockontrol_net::MasterNet>()
            .capture_memo
            .captures
    };
    let before = captures(&rig);
    for _ in 0..5 {
        rig.step();
    }
    assert_eq!(
        rig.registry().seq(),
        seq + 1,
        "no snapshot while it stays the same"
    );
    assert_eq!(
        captures(&rig),
        before,
        "quiet ticks serialize no part (the part is read only when its resource changed)"
    );
    let tick = rig.master.world().resource::<ShowClock>().next_tick;
    assert!(tick > 0);
}

#[test]
fn a_receiver_without_the_masters_parts_is_refused_at_hello() {
    let mut rig = Rig::new("mismatch", &show(), 1, nothing);
    // The master registers a part its receiver does not know (a build with media, say).
    house_lights(&mut rig.master);
    rig.step(); // the master's startup takes its app's hash
    let refusal = rig.connect(0).expect_err("another protocol");
    let text = refusal.to_string();
    let own = rig.receivers[0]
        .app
        .world()
        .resource::<ReplicationRules>()
        .protocol_hash();
    let master = rig
        .master
        .world()
        .resource::<ReplicationRules>()
        .protocol_hash();
    assert!(
        text.contains("protocol") && text.contains(&own) && text.contains(&master),
        "the refusal names both hashes: {text}"
    );
}

/// Captures every frame the app computes.
fn capture(app: &mut App) {
    app.init_resource::<rockontrol_engine::CaptureSink>();
}

/// Universe 1 of every captured frame, by tick (the last frame computed for a tick).
fn frames(app: &App) -> std::collections::BTreeMap<u64, Vec<u8>> {
    app.world()
        .resource::<rockontrol_engine::CaptureSink>()
        .frames
        .iter()
        .filter_map(|f| Some((f.tick, f.universe(1)?.to_vec())))
        .collect()
}

/// Issue 10 defect 3 across roles: the command seam's script with same-tick edge cases (a GO
/// on the tick a follow is due, a release with a 0 s release time, two commands in one tick)
/// run by the master gives every receiver the master's frames, tick for tick.
#[test]
fn receivers_compute_the_masters_frames_for_a_same_tick_script() {
    use seam_script::{LAST_TICK as LAST, SCRIPT};
    let mut rig = Rig::new("frames", &show(), 2, capture);
    linked(&mut rig);
    let start = rig.master.world().resource::<ShowClock>().next_tick + 2;
    {
        let mut queue = rig.master.world_mut().resource_mut::<CommandQueue>();
        for (tick, text) in SCRIPT {
            queue.at(start + tick, text.parse().unwrap_or_else(|e| panic!("{e}")));
        }
    }
    rig.step_until(LAST as u32 + 20, "the master ran the script", |rig| {
        rig.master.world().resource::<ShowClock>().next_tick > start + LAST + 2
    });
    let master = frames(&rig.master);
    assert_ne!(
        master.get(&(start + 23)),
        master.get(&(start + 60)),
        "the script moves the output"
    );
    for (i, r) in rig.receivers.iter().enumerate() {
        let theirs = frames(&r.app);
        for tick in start..=start + LAST {
            let m = master.get(&tick).expect("the master's frame");
            let t = theirs
                .get(&tick)
                .unwrap_or_else(|| panic!("node-0{}: no frame for tick {tick}", i + 1));
            assert_eq!(
                t,
                m,
                "node-0{}: tick {} of the script differs from the master's",
                i + 1,
                tick - start
            );
        }
    }
}

fn media_store_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rk-media-follow-{}", std::process::id()))
}

/// The master serves a media library (an empty one in a scratch directory).
fn with_media(app: &mut App) {
    let store = rockontrol_library::Store::open(media_store_dir()).expect("store");
    let show = rockontrol_show::Show::empty("");
    app.insert_resource(rockontrol_net::media::MasterMediaSetup(
        std::sync::Arc::new(rockontrol_net::media::MasterMedia::new(store, &show)),
    ));
}

/// Issue 13: the master's clip table and media part (manifests, GO gate) follow the show the
/// world holds now (an edit or a reload), not only the one it started with.
#[test]
fn the_masters_clip_table_follows_a_show_reload() {
    let mut rig = Rig::new("media-follow", &show(), 0, with_media);
    rig.step();
    let media = rig
        .master
        .world()
        .resource::<rockontrol_net::MasterNet>()
        .shared
        .media
        .clone()
        .expect("the master serves a library");
    assert!(media.clips.read().expect("clips").is_empty());
    let id = "a".repeat(64);
    let mut next = show();
    next.clips = vec![rockontrol_show::Clip {
        name: "intro".into(),
        id: id.clone(),
    }];
    next.media.gate = rockontrol_show::MediaGate::Warn;
    rockontrol_engine::load_show(rig.master.world_mut(), &next);
    rig.step_until(10, "the clip table follows", |_| {
        media.clips.read().expect("clips").len() == 1
    });
    assert_eq!(media.clips.read().expect("clips")[0].id, id);
    assert_eq!(
        media.setup.read().expect("setup").gate,
        rockontrol_show::MediaGate::Warn,
        "the media part (the gate mode) follows too"
    );
    let _ = std::fs::remove_dir_all(media_store_dir());
}

/// The seam show with a media layer `bg` on output `wall` and cue 1 of `fx` playing `intro`.
fn media_show() -> rockontrol_show::Show {
    let mut show = show();
    show.media.outputs = vec![rockontrol_show::LedWallOutput {
        name: "wall".into(),
        node: "node-01".into(),
        width: 16,
        height: 9,
        rate: rockontrol_show::FrameRate::whole(25),
        display: rockontrol_show::Display::default(),
        regions: Vec::new(),
    }];
    show.media.layers = vec![rockontrol_show::MediaLayer::new("bg", "wall")];
    show.media.cues = vec![rockontrol_show::MediaCue {
        cue_list: "fx".into(),
        cue: rockontrol_show::CueNumber(1000),
        actions: vec![rockontrol_show::MediaAction::Play {
            layer: "bg".into(),
            clip: "intro".into(),
            from: None,
            end: None,
            rate: None,
        }],
    }];
    show
}

fn media_plugin(app: &mut App) {
    app.add_plugins(rockontrol_media::MediaPlugin);
}

fn media_log(app: &App) -> rockontrol_media::MediaLog {
    app.world()
        .resource::<rockontrol_media::MediaShow>()
        .0
        .log()
        .clone()
}

/// Issue 14: the media log is saved with the master's stage. A master restarted on its state
/// directory has the same log (the GO's clip and the seek at the same show times), so it
/// replicates the same clips at the same frames; its own next GO adds to that log (it is the
/// master's, not a replica).
#[test]
fn a_restarted_master_keeps_its_media_log() {
    let dir = std::env::temp_dir().join(format!("rk-media-stage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state dir");
    let show = media_show();
    rockontrol_show::validate(&show).expect("a valid show");
    let mut master = rig::master_app(&show, media_plugin, Some(dir.clone()));
    for _ in 0..3 {
        master.update();
    }
    master
        .world_mut()
        .resource_mut::<CommandQueue>()
        .push(Command::Go {
            playback: "fx".into(),
            fade: None,
        });
    master.update();
    let rules = master.world().resource::<ReplicationRules>().clone();
    rules
        .handle_command(
            master.world_mut(),
            "media",
            serde_json::json!({"action": "seek", "layer": "bg", "position": 2.0}),
        )
        .expect("a media handler")
        .expect("accepted");
    master.update();
    let before = media_log(&master);
    assert_eq!(before.entries.len(), 2, "the GO and the seek: {before:?}");
    let stage = rockontrol_net::stage::stage_path(&dir, "master-mem");
    let saved = |want: &rockontrol_media::MediaLog| {
        rockontrol_net::stage::load(&stage)
            .ok()
            .flatten()
            .and_then(|r| r.parts.get(rockontrol_media::MEDIA_PART).cloned())
            .is_some_and(|v| v == serde_json::to_value(want).expect("json"))
    };
    let start = std::time::Instant::now();
    while !saved(&before) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the stage file holds the media log within 10 s"
        );
        master.update();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(master);

    let mut again = rig::master_app(&show, media_plugin, Some(dir.clone()));
    for _ in 0..3 {
        again.update();
    }
    assert_eq!(media_log(&again), before, "the same log after the restart");
    assert!(
        !again
            .world()
            .contains_resource::<rockontrol_media::MediaReplica>(),
        "the restored log is the master's own"
    );
    let published = again
        .world()
        .resource::<rockontrol_net::MasterNet>()
        .shared
        .registry()
        .parts()
        .get(rockontrol_media::MEDIA_PART)
        .cloned();
    assert_eq!(
        published,
        Some(serde_json::to_value(&before).expect("json")),
        "and it is what the restarted master replicates"
    );
    rules
        .handle_command(
            again.world_mut(),
            "media",
            serde_json::json!({"action": "stop", "layer": "bg"}),
        )
        .expect("a media handler")
        .expect("accepted");
    again.update();
    let after = media_log(&again);
    assert!(
        matches!(after.entries.last(), Some(rockontrol_media::LogEntry::Command { command, .. })
            if command.action() == "stop"),
        "a command after the restart goes into the master's log: {after:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
