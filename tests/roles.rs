//! Roles and permissions (issue 15) on a real master on loopback: every endpoint against every
//! role, keys limited to universes and playbacks, `rockontrol keys add|list|revoke` with a
//! revocation that closes open connections, the audit log on disk and over REST, and a
//! receiver refusing what its capabilities cannot run.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rockontrol_net::events::NodeEvent;
use rockontrol_net::handshake::key_id;
use rockontrol_net::protocol;
use support::node::{
    BIN, KEY, Node, Wire, free_port, master_addr, master_config, receiver_config, rest, temp_dir,
    ws_link,
};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/shows/demo.ron");

/// `rockontrol keys add --role ROLE --name NAME [extra]` on `state`: the key it printed.
fn keys_add(state: &Path, role: &str, name: &str, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["keys", "add", "--role", role, "--name", name, "--state-dir"])
        .arg(state)
        .args(extra)
        .output()
        .expect("rockontrol keys add");
    assert!(
        out.status.success(),
        "keys add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert_eq!(key.len(), 32, "the key alone on standard output: {key:?}");
    key
}

/// `rockontrol keys ARGS --state-dir STATE`: its standard output.
fn keys(state: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("rockontrol keys");
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A master (node-01 on universe 1, node-02 on universe 2, the demo show: playback `main`
/// drives universes 1 and 2, `chase` universe 1) with [`KEY`] as its link key.
fn start_master(dir: &Path, state: &Path) -> (Node, SocketAddr, u16) {
    let port = free_port();
    let cfg = dir.join("master.json");
    std::fs::write(&cfg, master_config(port, 2)).expect("master config");
    let master = Node::start("master", &cfg, Some(Path::new(DEMO)), state);
    let addr = master_addr(&master);
    (master, addr, port)
}

/// The WebSocket upgrade of `path` (`/api/ws`, `/api/control`) with `key`: the HTTP status
/// and the refusal's body.
fn ws_upgrade(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    match ws_link(addr, path, key) {
        Ok((_ws, response)) => (response.status().as_u16(), serde_json::Value::Null),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            (response.status().as_u16(), body)
        }
        Err(e) => panic!("WebSocket upgrade: {e}"),
    }
}

/// One endpoint of the table: its method and OpenAPI path, a concrete request, and the lowest
/// role allowed (`public`: no key needed).
struct Endpoint {
    method: &'static str,
    template: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    min: &'static str,
}

const ZERO_ID: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn table() -> Vec<Endpoint> {
    let e = |method, template, path, body, min| Endpoint {
        method,
        template,
        path,
        body,
        min,
    };
    let objects: &'static str = Box::leak(format!("/api/media/objects/{ZERO_ID}").into_boxed_str());
    let chunks: &'static str =
        Box::leak(format!("/api/media/objects/{ZERO_ID}/chunks").into_boxed_str());
    vec![
        e("get", "/api/nodes", "/api/nodes", None, "viewer"),
        e(
            "post",
            "/api/nodes/register",
            "/api/nodes/register",
            Some(r#"{"node_id": "node-09", "universes": [9]}"#),
            "admin",
        ),
        e(
            "post",
            "/api/command",
            "/api/command",
            Some(r#"{"type": "go", "playback": "chase"}"#),
            "operator",
        ),
        e(
            "post",
            "/api/nodes/{node_id}/command",
            "/api/nodes/node-01/command",
            Some(r#"{"type": "identify", "seconds": 1}"#),
            "operator",
        ),
        e(
            "get",
            "/api/nodes/{node_id}/status",
            "/api/nodes/node-01/status",
            None,
            "viewer",
        ),
        e(
            "post",
            "/api/nodes/{node_id}/adopt",
            "/api/nodes/node-07/adopt",
            None,
            "admin",
        ),
        e(
            "post",
            "/api/master/heartbeat",
            "/api/master/heartbeat",
            Some(r#"{"node_id": "node-01"}"#),
            "admin",
        ),
        e(
            "post",
            "/api/master/ack",
            "/api/master/ack",
            Some(r#"{"node_id": "node-01", "command_id": "none", "status": "executed"}"#),
            "admin",
        ),
        e("get", "/api/alerts", "/api/alerts", None, "viewer"),
        e("get", "/api/audit", "/api/audit", None, "admin"),
        e("get", "/api/show/{hash}", "/api/show/0000", None, "viewer"),
        e(
            "get",
            "/api/media/objects/{id}/chunks",
            chunks,
            None,
            "viewer",
        ),
        e("get", "/api/media/objects/{id}", objects, None, "viewer"),
        e(
            "put",
            "/api/media/objects/{id}",
            objects,
            Some("not a clip"),
            "programmer",
        ),
        e(
            "get",
            "/api/media/manifest",
            "/api/media/manifest?node=node-01",
            None,
            "viewer",
        ),
        e(
            "get",
            "/api/media/status",
            "/api/media/status",
            None,
            "viewer",
        ),
        e(
            "get",
            "/api/media/library",
            "/api/media/library",
            None,
            "viewer",
        ),
        e(
            "get",
            "/api/openapi.json",
            "/api/openapi.json",
            None,
            "public",
        ),
        e("get", "/api/control", "/api/control", None, "viewer"),
        e("get", "/api/ws", "/api/ws", None, "admin"),
    ]
}

const RANK: [&str; 5] = ["public", "viewer", "operator", "programmer", "admin"];

fn rank(role: &str) -> usize {
    RANK.iter()
        .position(|r| *r == role)
        .unwrap_or_else(|| panic!("no role {role}"))
}

/// Every endpoint of the master's OpenAPI document against a key of every role (and none):
/// allowed below its role never, above it always; refusals are 403 naming the role and the
/// role needed. The table must list exactly the documented operations (and the OpenAPI unit
/// test holds the document to the router), so a new route without an entry fails here.
#[test]
fn every_endpoint_answers_every_role_as_the_table_says() {
    let dir = temp_dir("roles-table");
    let state = dir.join("state");
    let viewer = keys_add(&state, "viewer", "lighting-designer", &[]);
    let operator = keys_add(&state, "operator", "desk", &[]);
    let programmer = keys_add(&state, "programmer", "programmer", &[]);
    let admin = keys_add(&state, "admin", "production", &[]);
    let chase_only = keys_add(
        &state,
        "operator",
        "chase-desk",
        &["--universe", "1", "--playback", "chase"],
    );
    let universe_1 = keys_add(&state, "operator", "u1-desk", &["--universe", "1"]);
    let (_master, addr, _) = start_master(&dir, &state);

    // The table against the live document: the same operations, the same lowest roles.
    let (status, doc) = rest(addr, "GET", "/api/openapi.json", None, None);
    assert_eq!(status, 200);
    let mut documented = BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let role = op["x-role"].as_str().unwrap_or("(none)").to_string();
            documented.insert((method.clone(), path.clone()), role);
        }
    }
    let table = table();
    let tabled: BTreeMap<_, _> = table
        .iter()
        .map(|e| {
            (
                (e.method.to_string(), e.template.to_string()),
                e.min.to_string(),
            )
        })
        .collect();
    assert_eq!(
        tabled, documented,
        "every documented operation has a table entry with its x-role (add new routes to the table)"
    );

    let callers: [(&str, Option<&str>); 6] = [
        ("public", None),
        ("viewer", Some(&viewer)),
        ("operator", Some(&operator)),
        ("programmer", Some(&programmer)),
        ("admin", Some(&admin)),
        ("admin", Some(KEY)),
    ];
    for entry in &table {
        for (role, key) in callers {
            let (status, body) = if entry.template == "/api/ws" || entry.template == "/api/control"
            {
                ws_upgrade(addr, entry.path, key)
            } else {
                rest(
                    addr,
                    &entry.method.to_uppercase(),
                    entry.path,
                    key,
                    entry.body,
                )
            };
            let what = format!("{} {} as {role}", entry.method, entry.path);
            if rank(role) >= rank(entry.min) {
                assert!(
                    status != 401 && status != 403,
                    "{what}: allowed, got {status} {body}"
                );
            } else if key.is_none() && entry.template == "/api/ws" {
                // Nodes link without a bearer key: they prove theirs in the frames (HMAC), or
                // wait to be adopted (tests/nodes.rs, tests/admission.rs).
                assert_eq!(status, 101, "{what}: a node's link: {body}");
            } else if key.is_none() {
                assert_eq!(status, 401, "{what}: no key: {body}");
            } else {
                assert_eq!(status, 403, "{what}: {body}");
                assert_eq!(
                    body["role"], role,
                    "{what}: the refusal names the role: {body}"
                );
                assert_eq!(
                    body["needs_role"], entry.min,
                    "{what}: and the role needed: {body}"
                );
                let error = body["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains(&format!("role {role}"))
                        && error.contains(&format!("the {} role is needed", entry.min)),
                    "{what}: the reason says it: {error}"
                );
            }
        }
    }
    let (status, body) = rest(addr, "GET", "/api/nodes", Some("not-a-key-0000000"), None);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid API key"))
    );

    // Limits: `chase-desk` may run chase (universe 1) and nothing else.
    let cmd = |key: &str, body: &str| rest(addr, "POST", "/api/command", Some(key), Some(body));
    let (status, body) = cmd(&chase_only, r#"{"type": "go", "playback": "chase"}"#);
    assert_eq!(status, 200, "its own playback: {body}");
    let (status, body) = cmd(&chase_only, r#"{"type": "go", "playback": "main"}"#);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["missing"], "playback \"main\" is not among this key's playbacks [\"chase\"]",
        "{body}"
    );
    let (status, body) = cmd(&universe_1, r#"{"type": "go", "playback": "main"}"#);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["missing"], "playback \"main\" drives universes [2] outside this key's universes [1]",
        "{body}"
    );
    let (status, body) = cmd(&universe_1, r#"{"type": "blackout", "on": true}"#);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["missing"]
            .as_str()
            .unwrap_or_default()
            .contains("whole rig"),
        "{body}"
    );
    let node = |n: &str| format!("/api/nodes/{n}/command");
    let identify = Some(r#"{"type": "identify", "seconds": 1}"#);
    let (status, body) = rest(addr, "POST", &node("node-01"), Some(&universe_1), identify);
    assert_eq!(status, 202, "node-01 outputs universe 1: {body}");
    let (status, body) = rest(addr, "POST", &node("node-02"), Some(&universe_1), identify);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["missing"], "node \"node-02\" outputs universes [2] outside this key's universes [1]",
        "{body}"
    );
    let (status, body) = rest(
        addr,
        "POST",
        &node("node-01"),
        Some(&operator),
        Some(r#"{"type": "restart"}"#),
    );
    assert_eq!(status, 403, "restarting a node is an admin's: {body}");

    // The audit log: every control action, allowed or not, over REST and as bytes on disk.
    let (status, page) = rest(addr, "GET", "/api/audit?limit=1000", Some(&admin), None);
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().expect("entries").clone();
    let find = |key: &str, action: &str, status: u64| {
        entries
            .iter()
            .find(|e| e["key_id"] == key_id(key) && e["action"] == action && e["status"] == status)
    };
    let denied = find(&viewer, "POST /api/command", 403).expect("the viewer's refused command");
    assert_eq!(denied["role"], "viewer");
    assert_eq!(denied["name"], "lighting-designer");
    assert!(
        denied["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "from where: {denied}"
    );
    assert!(
        denied["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the operator role is needed"),
        "{denied}"
    );
    let went = find(&chase_only, "go chase", 200).expect("the limited key's GO");
    assert_eq!(went["role"], "operator");
    let refused = find(&chase_only, "go main", 403).expect("its refused GO");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not among this key's playbacks"),
        "{refused}"
    );
    assert!(
        find(
            &programmer,
            &format!("PUT /api/media/objects/{ZERO_ID}"),
            422
        )
        .is_some(),
        "the programmer's upload, refused as no clip: {entries:?}"
    );
    assert!(
        entries.iter().all(|e| e["action"] != "GET /api/nodes"),
        "reads are not control actions"
    );
    let text = std::fs::read_to_string(state.join("audit.jsonl")).expect("the log on disk");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), entries.len(), "REST pages the file");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 1, "numbered in order: {line}");
    }
    for key in [
        &viewer,
        &operator,
        &programmer,
        &admin,
        &chase_only,
        &universe_1,
    ] {
        assert!(!text.contains(key.as_str()), "no key in the audit log");
    }
    let (_, second) = rest(
        addr,
        "GET",
        "/api/audit?after=2&limit=2",
        Some(&admin),
        None,
    );
    let seqs: Vec<u64> = second["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(
        (seqs, second["next"].as_u64()),
        (vec![3, 4], Some(4)),
        "paging"
    );

    // The keys file keeps hashes, and `keys list` shows ids, roles, limits, never a key.
    let file = std::fs::read_to_string(state.join("keys.json")).expect("keys file");
    let listed = keys(&state, &["list"]);
    for key in [&viewer, &operator, &programmer, &admin, &chase_only] {
        assert!(!file.contains(key.as_str()) && !listed.contains(key.as_str()));
        assert!(listed.contains(&key_id(key)), "listed by id: {listed}");
    }
    assert!(
        listed.contains("universes [1], playbacks [\"chase\"]"),
        "limits listed: {listed}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&keys(&state, &["list", "--json"])).expect("keys list --json");
    let desk = json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "chase-desk")
        .expect("listed");
    assert_eq!(
        (
            &desk["id"],
            &desk["role"],
            &desk["universes"],
            &desk["playbacks"]
        ),
        (
            &serde_json::json!(key_id(&chase_only)),
            &serde_json::json!("operator"),
            &serde_json::json!([1]),
            &serde_json::json!(["chase"])
        )
    );
    let out = Command::new(BIN)
        .args(["keys", "revoke", "nobody", "--state-dir"])
        .arg(&state)
        .output()
        .expect("keys revoke");
    assert!(!out.status.success(), "an unknown key is an error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no key \"nobody\" in the keys file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WebSocket link with `key` (the tool path), linked as `node-02`, read with a timeout.
fn tool_link(addr: SocketAddr, key: &str) -> tungstenite::WebSocket<Wire> {
    let (mut ws, _) = ws_link(addr, "/api/ws", Some(key)).expect("handshake");
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let hello = format!(
        r#"{{"v":1,"type":"hello","node_id":"node-02","role":"receiver","version":"0.1.0","protocol":1,"protocol_hash":"{}","capabilities":["dmx_output"],"universes":[2]}}"#,
        protocol::protocol_hash()
    );
    ws.send(tungstenite::Message::text(hello)).expect("hello");
    ws
}

/// Reads `ws` until a text frame contains `needle` or the link closes (`None`), within
/// `timeout`.
fn read_until(
    ws: &mut tungstenite::WebSocket<Wire>,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) if t.contains(needle) => return Some(t.to_string()),
            Ok(tungstenite::Message::Close(_)) => return None,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    panic!("no frame with {needle:?} within {timeout:?}");
}

/// `GET /api/nodes/NODE/status` with `key`: its state.
fn state_of(addr: SocketAddr, key: &str, node: &str) -> String {
    let (_, status) = rest(
        addr,
        "GET",
        &format!("/api/nodes/{node}/status"),
        Some(key),
        None,
    );
    status["state"].as_str().unwrap_or_default().to_string()
}

/// `rockontrol keys revoke` on a running master's state directory: the key stops working at
/// the next request, an open WebSocket it opened is closed, and a node whose link key is
/// revoked is dropped and cannot link again.
#[test]
fn a_revoked_key_stops_at_once_also_on_open_connections() {
    let dir = temp_dir("roles-revoke");
    let state = dir.join("state");
    let tool = keys_add(&state, "admin", "tool", &[]);
    let operator = keys_add(&state, "operator", "desk", &[]);
    let viewer = keys_add(&state, "viewer", "watcher", &[]);
    let (_master, addr, port) = start_master(&dir, &state);
    let rx_cfg = dir.join("node-01.json");
    std::fs::write(&rx_cfg, receiver_config(1, port, free_port(), "hold")).expect("config");
    let receiver = Node::start("receiver", &rx_cfg, None, &dir.join("rx-state"));
    receiver.wait_connected("master-01", &[1], Duration::from_secs(20));
    let mut ws = tool_link(addr, &tool);
    read_until(&mut ws, "\"welcome\"", Duration::from_secs(5)).expect("the tool is linked");

    // A key added while the master runs works at its first request.
    let late = keys_add(&state, "viewer", "late", &[]);
    let (status, body) = rest(addr, "GET", "/api/nodes", Some(&late), None);
    assert_eq!(status, 200, "{body}");

    let go = Some(r#"{"type": "go", "playback": "main"}"#);
    let (status, body) = rest(addr, "POST", "/api/command", Some(&operator), go);
    assert_eq!(status, 200, "{body}");
    let out = keys(&state, &["revoke", "desk"]);
    assert!(out.contains(&key_id(&operator)), "{out}");
    let (status, body) = rest(addr, "POST", "/api/command", Some(&operator), go);
    assert_eq!(status, 401, "refused at the next request: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{body}"
    );

    let revoked_at = Instant::now();
    keys(&state, &["revoke", &key_id(&tool)]);
    let refused = read_until(&mut ws, "revoked", Duration::from_secs(3));
    assert!(
        revoked_at.elapsed() < Duration::from_secs(2),
        "the open link is closed within a second or so: {:?} ({refused:?})",
        revoked_at.elapsed()
    );
    if let Some(frame) = refused {
        assert!(frame.contains("\"refused\""), "told why: {frame}");
    }
    assert_eq!(
        state_of(addr, &viewer, "node-02"),
        "offline",
        "node-02 dropped"
    );

    // The link key: node-01 proved it by HMAC; revoked, the node is dropped and stays out.
    let (_, status) = rest(
        addr,
        "GET",
        "/api/nodes/node-01/status",
        Some(&viewer),
        None,
    );
    assert_eq!(
        status["online"], true,
        "linked (online or degraded): {status}"
    );
    let listed = keys(&state, &["list"]);
    assert!(
        !listed.contains(KEY),
        "the link key is never listed: {listed}"
    );
    assert!(
        clock_answers(addr, KEY, 1),
        "the master answers clock pings signed with the link key"
    );
    keys(&state, &["revoke", &key_id(KEY)]);
    let start = Instant::now();
    while state_of(addr, &viewer, "node-01") != "offline" {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "node-01 not dropped after its link key was revoked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    receiver.wait_event(
        "refused with the revoked key",
        Duration::from_secs(15),
        |e| matches!(e, NodeEvent::Refused { reason, .. } if reason.contains("revoked")),
    );
    // It links again every 5 s, and is refused again: the revoked key links no more.
    let refusals =
        |e: &NodeEvent| matches!(e, NodeEvent::Refused { reason } if reason.contains("revoked"));
    let start = Instant::now();
    while receiver.count_events(refusals) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "node-01 tried to link again and was refused: {:?}",
            receiver.events()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(state_of(addr, &viewer, "node-01"), "offline", "stays out");
    let (status, _) = rest(addr, "GET", "/api/nodes", Some(KEY), None);
    assert_eq!(status, 401, "the link key is refused on the API too");
    assert!(
        !clock_answers(addr, KEY, 2),
        "and its clock pings are answered no more"
    );

    let (_, page) = rest(addr, "GET", "/api/audit?limit=1000", Some(&viewer), None);
    assert_eq!(
        page["role"], "viewer",
        "the audit log is an admin's: {page}"
    );
    let log = std::fs::read_to_string(state.join("audit.jsonl")).expect("audit log");
    assert!(
        log.contains(&format!(
            "drop node node-01: its link key {} was revoked",
            key_id(KEY)
        )),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the master's UDP clock responder (its address and port) answers a ping signed
/// with `key` within a second.
fn clock_answers(addr: SocketAddr, key: &str, seq: u64) -> bool {
    let key = rockontrol_clock::ClockKey::derive(key);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let ping = rockontrol_clock::Ping {
        session: 0x5eed,
        seq,
        t1: 1,
    };
    socket.send_to(&ping.encode(&key), addr).expect("send");
    let mut buf = [0u8; 256];
    match socket.recv(&mut buf) {
        Ok(n) => rockontrol_clock::Pong::decode(&buf[..n], &key).is_ok(),
        Err(_) => false,
    }
}

/// The seed's "command filtering based on role": a `dmx_output`-only receiver refuses a media
/// command and says why in its ack; the master counts it failed.
#[test]
fn a_receiver_refuses_commands_its_capabilities_cannot_run() {
    let dir = temp_dir("roles-capabilities");
    let state = dir.join("state");
    let (_master, addr, port) = start_master(&dir, &state);
    let rx_cfg = dir.join("node-01.json");
    let config = receiver_config(1, port, free_port(), "hold")
        .replace(r#"["dmx_output", "media_playback"]"#, r#"["dmx_output"]"#);
    assert!(
        config.contains(r#""capabilities": ["dmx_output"]"#),
        "{config}"
    );
    std::fs::write(&rx_cfg, config).expect("config");
    let receiver = Node::start("receiver", &rx_cfg, None, &dir.join("rx-state"));
    receiver.wait_connected("master-01", &[1], Duration::from_secs(20));
    let (status, body) = rest(
        addr,
        "POST",
        "/api/nodes/node-01/command",
        Some(KEY),
        Some(r#"{"type": "media", "action": "play", "clip": "intro"}"#),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["command_id"].as_str().expect("command id").to_string();
    let failed = receiver.wait_event(
        "the media command refused",
        Duration::from_secs(10),
        |e| matches!(e, NodeEvent::CommandFailed { id: i, .. } if *i == id),
    );
    let NodeEvent::CommandFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "this node cannot run a media command: it needs the media_playback capability, and this node has [dmx_output]"
    );
    let start = Instant::now();
    loop {
        let (_, status) = rest(addr, "GET", "/api/nodes/node-01/status", Some(KEY), None);
        if status["commands_failed"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the master counts it failed: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
