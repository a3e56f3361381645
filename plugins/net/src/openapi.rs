//! The OpenAPI 3.0 description served at `GET /api/openapi.json`.

/// The master's REST API.
pub const OPENAPI_JSON: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "RocKontrol master node API", "version": "1", "description": "Every operation's `x-role` is the lowest key role it needs: viewer < operator < programmer < admin (`public`: no key). Keys limited to universes or playbacks are also checked per command. Without a valid key: 401; outside the key's role or limits: 403 with the reason."},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Error": {"type": "object", "required": ["error", "status"], "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
      "Register": {"type": "object", "required": ["node_id"], "properties": {"node_id": {"type": "string"}, "capabilities": {"type": "array", "items": {"type": "string", "enum": ["dmx_output", "media_playback"]}}, "universes": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 63999}}}},
      "NodeCommand": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["cue", "go", "back", "release", "clear", "blackout", "intensity", "grand_master", "media", "identify", "restart", "ping"]}, "cue_id": {"type": "number"}, "fade_time": {"type": "number"}, "playback": {"type": "string"}, "on": {"type": "boolean"}, "level": {"type": "number"}, "action": {"type": "string", "enum": ["play", "pause", "stop", "seek"]}, "clip": {"type": "string"}, "position": {"type": "number", "description": "media: seconds into the clip (play, seek)"}, "layer": {"type": "string", "description": "media: the layer (POST /api/command)"}, "at": {"type": "number", "description": "media: show time in seconds when it takes effect (default: now + the pre-roll, 150 ms)"}, "rate": {"type": "number", "description": "media play: speed, 1.0 = the clip's rate"}, "seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 5, "description": "identify: how long the node's fixtures flash at 2 Hz"}}},
      "NodeStatus": {"type": "object", "required": ["online", "last_heartbeat", "dmx_fps", "cpu_usage"], "properties": {"online": {"type": "boolean"}, "last_heartbeat": {"type": "string", "format": "date-time", "nullable": true}, "dmx_fps": {"type": "number"}, "cpu_usage": {"type": "number"}, "node_id": {"type": "string"}, "state": {"type": "string", "enum": ["online", "degraded", "offline", "pending"]}, "state_since": {"type": "string", "format": "date-time"}, "universes": {"type": "array", "items": {"type": "integer"}}, "pending_commands": {"type": "integer"}, "commands_executed": {"type": "integer"}, "commands_failed": {"type": "integer"}, "degraded_reason": {"type": "string", "nullable": true}, "clock": {"$ref": "#/components/schemas/ClockStatus"}, "playback": {"$ref": "#/components/schemas/PlaybackReport"}}},
      "PlaybackReport": {"type": "object", "description": "media playback on a node", "properties": {"show_ns": {"type": "integer"}, "armed": {"type": "boolean", "description": "every clip starting within the pre-roll holds its first frame"}, "outputs": {"type": "array", "items": {"type": "object", "properties": {"output": {"type": "string"}, "refresh_ns": {"type": "integer"}, "phase_ns": {"type": "integer"}, "timing": {"type": "string", "enum": ["scanout", "rate"], "description": "refresh show times: predicted scanout on a measured display, or the output rate's target times"}, "skipped": {"type": "integer", "description": "refreshes never composed (presenting slower than the grid)"}, "refreshes": {"type": "integer"}, "lag_ns": {"type": "integer"}}}}, "layers": {"type": "array", "items": {"type": "object", "properties": {"layer": {"type": "string"}, "output": {"type": "string"}, "clip": {"type": "string"}, "start_ns": {"type": "integer"}, "frame": {"type": "integer"}, "paused": {"type": "boolean"}, "shown": {"type": "integer"}, "late": {"type": "integer"}, "missed": {"type": "integer"}, "skipped": {"type": "integer"}, "decoder": {"type": "string"}, "armed": {"type": "boolean"}, "error": {"type": "string"}}}}}},
      "ClockStatus": {"type": "object", "description": "A receiver's clock sync against its master", "properties": {"master": {"type": "string"}, "locked": {"type": "boolean"}, "offset_ns": {"type": "integer", "description": "this node's clock minus the master's"}, "drift_ppm": {"type": "number"}, "uncertainty_ns": {"type": "number"}, "min_rtt_ns": {"type": "integer"}, "frequency_ppm": {"type": "number", "description": "the frequency correction of this node's show time"}, "transport": {"type": "string", "enum": ["udp", "websocket"]}, "show_error_ns": {"type": "integer"}, "samples": {"type": "integer"}, "steps": {"type": "integer"}, "kernel_timestamps": {"type": "boolean"}, "injected_offset_ns": {"type": "integer"}}},
      "Heartbeat": {"type": "object", "required": ["node_id"], "properties": {"node_id": {"type": "string"}, "status": {"type": "string"}, "metrics": {"type": "object", "properties": {"dmx_fps": {"type": "number"}, "cpu_usage": {"type": "number"}, "memory_mb": {"type": "number"}, "frames_out": {"type": "integer"}}}}},
      "Ack": {"type": "object", "required": ["node_id", "command_id", "status"], "properties": {"node_id": {"type": "string"}, "command_id": {"type": "string"}, "status": {"type": "string", "enum": ["executed", "failed"]}, "reason": {"type": "string"}}}
    },
    "responses": {
      "Unauthorized": {"description": "missing or invalid key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Forbidden": {"description": "the key's role or limits do not allow it: `error` says why; `key_id`, `role`, `action`, `missing` and `needs_role` (when the role is what is missing) say it field by field", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "no such node", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "BadRequest": {"description": "invalid body", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "security": [{"bearer": []}],
  "paths": {
    "/api/nodes": {"get": {"x-role": "viewer", "summary": "Every known node with its status (`nodes`), the key-less connections waiting to be adopted (`pending`: connection, node_id, address, version, universes, since), and the nodes seen advertising over mDNS (`discovered`)", "responses": {"200": {"description": "nodes"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/api/nodes/register": {"post": {"x-role": "admin", "summary": "Register a node", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Register"}}}}, "responses": {"201": {"description": "registered"}, "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "409": {"description": "a universe belongs to another node"}}}},
    "/api/command": {"post": {"x-role": "operator", "summary": "A show command (cue, go, back, release, clear, blackout, grand_master, or an engine command): applied by the master's engine at a tick and replicated to every node. A media command ({\"type\": \"media\", \"action\": \"play|pause|stop|seek\", \"layer\": …, \"clip\", \"position\", \"at\", \"rate\"}) is recorded in the replicated media log at its show time and answered with result.at_ns. A cue that starts a clip not ready on a node that must play it passes the show's media gate (Refuse: 409; Warn: runs, with the list)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NodeCommand"}}}}, "responses": {"200": {"description": "executed, with the tick (and `warning`, `media_not_ready` when the media gate is Warn)"}, "409": {"description": "the media gate refused it: `media_not_ready` lists {node, clip, state}"}, "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "422": {"description": "refused by the engine"}, "503": {"description": "the engine is busy or did not answer"}}}},
    "/api/nodes/{node_id}/command": {"post": {"x-role": "operator", "summary": "Send a command to a node (queued while it is offline); to the master's own id: a show command. A show command (cue, go, back, release, clear) for a receiver is refused with 409: send it to POST /api/command", "parameters": [{"name": "node_id", "in": "path", "required": true, "schema": {"type": "string"}}], "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NodeCommand"}}}}, "responses": {"200": {"description": "show command executed (master)"}, "202": {"description": "sent or queued, with command_id"}, "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}, "409": {"description": "a show or media command for one receiver: send it to POST /api/command", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}, "422": {"description": "refused by the engine"}}}},
    "/api/nodes/{node_id}/status": {"get": {"x-role": "viewer", "summary": "A node's status (the master's own id: its own media outputs' playback, while the show gives it outputs)", "parameters": [{"name": "node_id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NodeStatus"}}}}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/nodes/{node_id}/adopt": {"post": {"x-role": "admin", "summary": "Adopt the pending (key-less) connection claiming this id; the id is then bound to the control key and the adoption is kept in the state directory", "parameters": [{"name": "node_id", "in": "path", "required": true, "schema": {"type": "string"}}], "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"connection": {"type": "integer", "description": "which pending connection, when several claim the id"}}}}}}, "responses": {"200": {"description": "adopted (`saved`: kept on disk)"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"description": "no pending connection claims this id"}, "409": {"description": "several connections claim it, the id is known, or its universes are another node's"}}}},
    "/api/master/heartbeat": {"post": {"x-role": "admin", "summary": "Report node status", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Heartbeat"}}}}, "responses": {"200": {"description": "ok"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/master/ack": {"post": {"x-role": "admin", "summary": "Acknowledge a command", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ack"}}}}, "responses": {"200": {"description": "ok"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/alerts": {"get": {"x-role": "viewer", "summary": "Operator alerts (command failures, conflicts, refused nodes and connections): severity, kind, source, count, first `time` and `last_time`; repeats of one kind from one source are one entry", "responses": {"200": {"description": "alerts"}}}},
    "/api/audit": {"get": {"x-role": "admin", "summary": "The audit log: every control action (every request but GET/HEAD, and every command over any channel), oldest first, as {seq, time, key_id, name, role, peer, action, status, reason}; page with `after` (the `next` of the previous page)", "parameters": [{"name": "after", "in": "query", "required": false, "schema": {"type": "integer", "default": 0}, "description": "entries numbered above this"}, {"name": "since", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}, "description": "entries at or after this time"}, {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "default": 100, "maximum": 1000}}], "responses": {"200": {"description": "{entries, next}"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"description": "the master keeps no audit log (no state directory)"}}}},
    "/api/show/{hash}": {"get": {"x-role": "viewer", "summary": "The replicated show as RON, by content hash", "parameters": [{"name": "hash", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "show", "content": {"application/ron": {}}}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/media/objects/{id}/chunks": {"get": {"x-role": "viewer", "summary": "The clip's BLAKE3 per 4 MiB chunk, for fetchers that take chunks from peers: {chunk, total, hashes}", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}], "responses": {"200": {"description": "the chunk hashes"}, "400": {"description": "not a clip id"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"description": "no such clip in the library"}}}},
    "/api/media/objects/{id}": {"get": {"x-role": "viewer", "summary": "A clip of the media library by id (BLAKE3 of its bytes; also HEAD). Accept-Ranges, strong ETag = the id in quotes, Range gives 206, If-Range honoured (a Range whose If-Range is not this tag gets the whole clip)", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}], "responses": {"200": {"description": "the clip", "content": {"application/octet-stream": {}}}, "206": {"description": "the range asked for"}, "400": {"description": "not a clip id"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"description": "no such clip in the library"}, "416": {"description": "the range is outside the clip"}}}, "put": {"x-role": "programmer", "summary": "Upload a clip (control key), resumable with Content-Range: bytes S-E/T; every answer carries the offset to send next. Installed when whole, only if it hashes to the id and is media", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}], "responses": {"200": {"description": "already in the library"}, "201": {"description": "installed: its facts"}, "202": {"description": "range kept (`offset`, `total`)"}, "400": {"description": "bad Content-Range, or a truncated body (the bytes that came are kept; `offset`)"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}, "409": {"description": "the range does not start at the bytes held (`offset`)"}, "422": {"description": "the bytes do not hash to the id, or are not media; nothing kept"}}}},
    "/api/media/manifest": {"get": {"x-role": "viewer", "summary": "The clips a node must hold (`?node=ID`): id, show name, size; `unavailable` names clips the library lacks", "parameters": [{"name": "node", "in": "query", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "manifest"}, "400": {"description": "no node given"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/media/status": {"get": {"x-role": "viewer", "summary": "Media readiness of every media node: ready, bytes_done, bytes_total, not_ready, and per clip missing / downloading (bytes, total) / verified / ready / failed", "responses": {"200": {"description": "status"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/api/media/library": {"get": {"x-role": "viewer", "summary": "Every clip in the master's library with its facts (container, codec, size, frame rate, frames, duration, alpha, audio)", "responses": {"200": {"description": "clips"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/api/openapi.json": {"get": {"x-role": "public", "summary": "This description", "security": [], "responses": {"200": {"description": "OpenAPI 3.0 JSON", "content": {"application/json": {}}}}}},
    "/api/control": {"get": {"x-role": "viewer", "summary": "WebSocket for tools (Authorization: Bearer on the upgrade; a viewer key may subscribe; a command needs the operator role and is checked against the key's limits as POST /api/command is; the link closes when its key is revoked). Each text frame is a request: {\"id\": any, \"command\": {the body of POST /api/command}} is run by the same code as POST /api/command and answered {\"id\", \"status\", \"body\"} with REST's status and body (409 media_not_ready, 422, …); {\"id\", \"subscribe\": true | {\"interval_ms\": 100..10000}} pushes {\"event\": \"state\", \"master_id\", \"tick\", \"nodes\": [NodeStatus…]} (the master's own outputs included) when it changes; {\"unsubscribe\": true} stops it. Frames of at most 64 KiB (larger closes the link), 50 commands/s with a burst of 100 (more: 429), a frame that is not a request gets a 400 reply and ten of them close the link", "responses": {"101": {"description": "switching protocols"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}},
    "/api/ws": {"get": {"x-role": "admin", "summary": "WebSocket control channel of a receiver (versioned JSON text frames; a receiver proves its key by HMAC challenge-response in the frames, a tool may send Authorization: Bearer with an admin key). The link closes when the key that opened it is revoked", "responses": {"101": {"description": "switching protocols"}, "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}}}}
  }
}"##;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn description() -> serde_json::Value {
        serde_json::from_str(super::OPENAPI_JSON).expect("valid JSON")
    }

    #[test]
    fn the_description_is_json_and_lists_the_seed_endpoints() {
        let v = description();
        for path in [
            "/api/nodes/register",
            "/api/nodes/{node_id}/command",
            "/api/nodes/{node_id}/status",
            "/api/master/heartbeat",
            "/api/master/ack",
            "/api/nodes",
        ] {
            assert!(v["paths"][path].is_object(), "{path} is described");
        }
    }

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    /// (method, path) of every `.route(PATH, METHOD(handler)…)` in `master/server.rs`'s `router`
    /// and in the media library's `router` (merged into it), read from their source: the
    /// routers are the truth the description must match.
    fn routed() -> BTreeSet<(String, String)> {
        let mut routes = routed_in(include_str!("master/server.rs"));
        routes.extend(routed_in(include_str!("../../library/src/serve.rs")));
        assert!(routes.len() > 5, "the parse found the routes: {routes:?}");
        routes
    }

    fn routed_in(source: &str) -> BTreeSet<(String, String)> {
        let body = source
            .split("pub fn router(")
            .nth(1)
            .expect("the source has `pub fn router(`");
        let body = &body[..body.find("\n}\n").expect("the end of router")];
        let mut routes = BTreeSet::new();
        for call in body.split(".route(").skip(1) {
            let path = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
                .expect("a route path literal");
            // The route's arguments: up to the `)` closing `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("`.route(` is closed");
            let args = &call[..end];
            let mut found = false;
            for method in METHODS {
                let mut rest = args;
                while let Some(at) = rest.find(&format!("{method}(")) {
                    let before = rest[..at].chars().next_back();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        routes.insert((method.to_string(), path.to_string()));
                        found = true;
                    }
                    rest = &rest[at + method.len()..];
                }
            }
            assert!(found, "route {path}: no method found in {args:?}");
        }
        routes
    }

    fn described() -> BTreeSet<(String, String)> {
        let v = description();
        let paths = v["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, ops)| {
                let ops = ops.as_object().expect("operations");
                ops.keys()
                    .filter(|m| METHODS.contains(&m.as_str()))
                    .map(|m| (m.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Drift between the router and its description fails here: every route is described,
    /// and every description is routed.
    #[test]
    fn the_description_matches_the_router() {
        let routed = routed();
        let described = described();
        let undocumented: Vec<_> = routed.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but not described: {undocumented:?}; described but not routed: {unrouted:?}"
        );
    }

    /// Every operation says the lowest role it needs (`tests/roles.rs` holds the master to it).
    #[test]
    fn every_operation_names_its_lowest_role() {
        let v = description();
        for (path, ops) in v["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                let role = op["x-role"].as_str().unwrap_or("(none)");
                let known =
                    role == "public" || crate::roles::Role::ALL.iter().any(|r| r.name() == role);
                assert!(known, "{method} {path}: x-role {role:?}");
                let keyed_above_viewer = role != "public" && role != "viewer";
                assert!(
                    !keyed_above_viewer || op["responses"]["403"].is_object(),
                    "{method} {path} ({role}) documents its 403"
                );
            }
        }
    }

    /// The variants serde accepts, read from its "unknown variant" error.
    fn serde_variants<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        json: &str,
    ) -> BTreeSet<String> {
        let e = serde_json::from_str::<T>(json).expect_err("no such variant");
        let text = e.to_string();
        // serde: "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
        let list = text
            .split_once("expected ")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("serde lists the variants: {text}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    fn schema_enum(pointer: &str) -> BTreeSet<String> {
        description()
            .pointer(pointer)
            .and_then(|e| e.as_array())
            .unwrap_or_else(|| panic!("{pointer} is an enum"))
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    }

    /// The enums of the description are the ones the types accept.
    #[test]
    fn the_description_matches_the_types() {
        assert_eq!(
            schema_enum("/components/schemas/NodeCommand/properties/type/enum"),
            serde_variants::<crate::protocol::NodeCommand>(r#"{"type": "?"}"#),
            "NodeCommand types"
        );
        assert_eq!(
            schema_enum("/components/schemas/NodeCommand/properties/action/enum"),
            serde_variants::<crate::protocol::MediaAction>(r#""?""#),
            "media actions"
        );
        assert_eq!(
            schema_enum("/components/schemas/Ack/properties/status/enum"),
            serde_variants::<crate::protocol::AckStatus>(r#""?""#),
            "ack statuses"
        );
    }
}
