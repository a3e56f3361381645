//! Avahi, a real and independent mDNS/DNS-SD implementation, sees a node advertised with
//! `mdns-sd`: `avahi-browse -rtp _rockontrol._tcp` lists it with its address, port and TXT
//! records, and drops it once the node says goodbye.
//!
//! Everything stays on loopback: the node advertises on `lo` only, and when this test has to
//! start `avahi-daemon` itself (a fresh CI container has no init system) it runs it with
//! `allow-interfaces=lo`. The test skips, loudly, when `avahi-browse` is not installed
//! (`scripts/setup.sh` installs it) or when no daemon runs and it cannot start one, and
//! fails instead when `$CI` is set.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rockontrol_net::config::{Capability, Role};
use rockontrol_net::discovery::{Advert, SERVICE_TYPE, advertise_on, browse_on};
use rockontrol_net::protocol;

#[path = "../../../tests/support/skip.rs"]
mod skip;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the test cannot run: skipped where avahi is absent, failed where it is broken.
enum Unavailable {
    NotHere(String),
    Broken(String),
}

/// A running `avahi-daemon`; stopped on drop if this test started it.
struct Avahi {
    started: bool,
    conf: Option<PathBuf>,
}

/// Avahi's configuration for a daemon this test starts: loopback only, IPv4, no wide area.
const AVAHI_CONF: &str = "[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=no
publish-domain=no
[reflector]
[rlimits]
";

impl Avahi {
    /// The running daemon, or one started here; `Err` says why the test cannot run.
    fn ensure() -> Result<Avahi, Unavailable> {
        if !on_path("avahi-browse") || !on_path("avahi-daemon") {
            return Err(Unavailable::NotHere(
                "avahi-browse/avahi-daemon not installed (run scripts/setup.sh)".into(),
            ));
        }
        if succeeds("avahi-daemon", &["--check"]) {
            return Ok(Avahi {
                started: false,
                conf: None,
            });
        }
        if !is_root() {
            return Err(Unavailable::NotHere(
                "avahi-daemon is not running and only root may start it".into(),
            ));
        }
        Avahi::start().map_err(Unavailable::Broken)
    }

    fn start() -> Result<Avahi, String> {
        // The system bus: avahi-browse talks to the daemon over D-Bus.
        const BUS: &str = "/run/dbus/system_bus_socket";
        if std::os::unix::net::UnixStream::connect(BUS).is_err() {
            std::fs::create_dir_all("/run/dbus").map_err(|e| format!("/run/dbus: {e}"))?;
            // A socket and pid file left behind by a bus that is gone stop a new one.
            let _ = std::fs::remove_file(BUS);
            let _ = std::fs::remove_file("/run/dbus/pid");
            if !succeeds("dbus-daemon", &["--system", "--fork"]) {
                return Err("cannot start the D-Bus system bus (dbus-daemon --system)".into());
            }
        }
        let conf = std::env::temp_dir().join(format!("rk-avahi-{}.conf", std::process::id()));
        std::fs::write(&conf, AVAHI_CONF).map_err(|e| format!("{}: {e}", conf.display()))?;
        let conf_arg = conf.to_string_lossy().to_string();
        let mut avahi = Avahi {
            started: false,
            conf: Some(conf),
        };
        // Containers may forbid the chroot or the privilege drop; try plainer ways in turn.
        for extra in [
            &[][..],
            &["--no-chroot"],
            &["--no-chroot", "--no-drop-root"],
        ] {
            let mut args = vec!["-f", conf_arg.as_str(), "-D"];
            args.extend_from_slice(extra);
            if !succeeds("avahi-daemon", &args) {
                continue;
            }
            avahi.started = true;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if succeeds("avahi-daemon", &["--check"]) {
                    eprintln!("started avahi-daemon {args:?} for this test");
                    return Ok(avahi);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = succeeds("avahi-daemon", &["-k"]);
            avahi.started = false;
        }
        Err("avahi-daemon would not start".into())
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        if self.started {
            let _ = succeeds("avahi-daemon", &["-k"]);
        }
        if let Some(conf) = &self.conf {
            let _ = std::fs::remove_file(conf);
        }
    }
}

/// One resolved service from `avahi-browse -p`.
#[derive(Debug, PartialEq)]
struct Resolved {
    interface: String,
    name: String,
    host: String,
    address: String,
    port: u16,
    txt: BTreeMap<String, String>,
}

/// `=;lo;IPv4;NAME;_rockontrol._tcp;local;HOST;ADDRESS;PORT;"k=v" "k=v"`
fn parse_resolved(line: &str) -> Option<Resolved> {
    let fields: Vec<&str> = line.splitn(10, ';').collect();
    let [
        kind,
        interface,
        _proto,
        name,
        service,
        _domain,
        host,
        address,
        port,
        txt,
    ] = fields[..]
    else {
        return None;
    };
    if kind != "=" || service != "_rockontrol._tcp" {
        return None;
    }
    let txt = txt
        .split("\" \"")
        .map(|kv| kv.trim_matches('"'))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Resolved {
        interface: interface.into(),
        name: name.into(),
        host: host.into(),
        address: address.into(),
        port: port.parse().ok()?,
        txt,
    })
}

/// One bounded `avahi-browse -rtp _rockontrol._tcp` run: every resolved service.
fn avahi_browse() -> Vec<Resolved> {
    let out = Command::new("timeout")
        .args(["10", "avahi-browse", "-rtp", "_rockontrol._tcp"])
        .stderr(Stdio::null())
        .output()
        .expect("run avahi-browse");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_resolved)
        .collect()
}

#[test]
fn avahi_browse_parses_its_own_output_format() {
    let line = r#"=;lo;IPv4;node-01;_rockontrol._tcp;local;rockontrol-node-01.local;127.0.0.1;9000;"version=0.1.0" "universes=1,2" "role=receiver""#;
    let r = parse_resolved(line).expect("a resolved line");
    assert_eq!(
        (r.interface.as_str(), r.name.as_str(), r.port),
        ("lo", "node-01", 9000)
    );
    assert_eq!(r.txt["universes"], "1,2");
    assert_eq!(r.txt.len(), 3, "{:?}", r.txt);
    assert_eq!(
        parse_resolved("+;lo;IPv4;node-01;_rockontrol._tcp;local"),
        None
    );
}

#[test]
fn avahi_browse_sees_a_node_advertised_with_mdns_sd() {
    let _avahi = match Avahi::ensure() {
        Ok(a) => a,
        Err(Unavailable::NotHere(why)) => {
            skip::unavailable("avahi_browse_sees_a_node_advertised_with_mdns_sd", &why);
            return;
        }
        Err(Unavailable::Broken(why)) => panic!("avahi is installed but unusable: {why}"),
    };
    let node_id = format!("avahi-probe-{}", std::process::id());
    let advert = Advert {
        node_id: node_id.clone(),
        role: Role::Receiver,
        port: 9123,
        universes: vec![5, 6],
        capabilities: vec![Capability::DmxOutput, Capability::MediaPlayback],
        fingerprint: Some(rockontrol_tls::Fingerprint([0xA5; 32])),
    };
    let fingerprint = rockontrol_tls::Fingerprint([0xA5; 32]).to_string();
    let daemon = advertise_on(&advert, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some("lo"))
        .expect("advertise on lo");

    let start = Instant::now();
    let found = loop {
        if let Some(r) = avahi_browse().into_iter().find(|r| r.name == node_id) {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "avahi-browse never resolved {node_id} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let expected_txt: BTreeMap<String, String> = [
        ("node_id", node_id.as_str()),
        ("role", "receiver"),
        ("version", protocol::VERSION),
        ("protocol", protocol::protocol_hash().as_str()),
        ("universes", "5,6"),
        ("capabilities", "dmx_output,media_playback"),
        ("tls", "on"),
        ("fingerprint", fingerprint.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        found,
        Resolved {
            interface: "lo".into(),
            name: node_id.clone(),
            host: format!("rockontrol-{node_id}.local"),
            address: "127.0.0.1".into(),
            port: 9123,
            txt: expected_txt.clone(),
        },
        "what avahi-browse resolved"
    );

    // Our own browser (the one receivers use to find a master) reads the same records.
    let seen = browse_on(Some("lo"), Duration::from_secs(3), false);
    let ours = seen
        .iter()
        .find(|s| s.node_id == node_id)
        .unwrap_or_else(|| panic!("mdns-sd browse missed {node_id}: {seen:?}"));
    assert_eq!(ours.txt, expected_txt);
    assert_eq!(
        ours.fingerprint(),
        Some(rockontrol_tls::Fingerprint([0xA5; 32])),
        "the fingerprint read back from the TXT record"
    );
    assert_eq!(ours.addr, "127.0.0.1:9123".parse().expect("addr"));

    // Goodbye: once unregistered, avahi drops it.
    let fullname = format!("{node_id}.{SERVICE_TYPE}");
    let _ = daemon
        .unregister(&fullname)
        .map(|rx| rx.recv_timeout(Duration::from_secs(5)));
    let start = Instant::now();
    while avahi_browse().iter().any(|r| r.name == node_id) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "avahi still lists {node_id} 15 s after its goodbye"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = daemon.shutdown();
}
