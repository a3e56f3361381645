//! A real OLA `olad` in a network namespace of its own, for interop tests.
//!
//! Facts from `../shared/interop/PEERS.md`: OLA ignores loopback interfaces for E1.31, so it
//! runs in a namespace with `lo` up, a multicast route on `lo`, and a port-less bridge with two
//! benchmarking-range addresses (198.18.0.1 for OLA, 198.18.0.2 for us). Nothing can leave the
//! machine from there. `olad` refuses to run as root: it runs as the package's `olad` user.
//! Dropping the guard stops `olad` and deletes the namespace.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use super::olad::{self, run};

/// OLA's address inside the namespace.
pub const OLA_IP: &str = "198.18.0.1";
/// Our node's address inside the namespace.
pub const NODE_IP: &str = "198.18.0.2";

pub struct Ola {
    pub namespace: String,
    conf: PathBuf,
    olad: Option<Child>,
}

/// Whether OLA's `olad` is on `PATH` (tests that need it skip, loudly, when it is not).
pub fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("olad").is_file()))
}

impl Ola {
    /// Starts `olad` with the given `ola-port.conf` patch lines (e.g. `11-1-I-0 = 1`: OLA
    /// universe 1 receives sACN universe 1; `2-1-I-0 = 3`: OLA universe 3 receives Art-Net
    /// port-address 0:0:3; `11-1-O-0 = 10`: OLA universe 10 sends sACN universe 10, and
    /// `11-1-O-0_priority_value = 150` with `11-1-O-0_priority_mode = 1` at priority 150).
    /// Waits until its HTTP API answers. Its sACN source name is its instance name,
    /// `OLA Server` (no host name prepended); its Art-Net long name is `OLA test node`.
    pub fn start(name: &str, patches: &[&str]) -> Ola {
        let namespace = format!("rk-{name}-{}", std::process::id());
        let conf = std::env::temp_dir().join(format!("{namespace}-conf"));
        let mut ola = Ola {
            namespace: namespace.clone(),
            conf: conf.clone(),
            olad: None,
        };
        let ns = namespace.as_str();
        let _ = run(&["ip", "netns", "del", ns]);
        for step in [
            vec!["ip", "netns", "add", ns],
            vec!["ip", "-n", ns, "link", "set", "lo", "up"],
            vec!["ip", "-n", ns, "link", "add", "br0", "type", "bridge"],
            vec!["ip", "-n", ns, "link", "set", "br0", "up"],
            // With the broadcast address set, so directed broadcasts (OLA's ArtPoll and
            // ArtPollReply, our announcements) reach every socket in the namespace.
            vec![
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                "198.18.0.1/24",
                "broadcast",
                "198.18.0.255",
                "dev",
                "br0",
            ],
            vec![
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                "198.18.0.2/24",
                "broadcast",
                "198.18.0.255",
                "dev",
                "br0",
            ],
            vec!["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo"],
        ] {
            run(&step).unwrap_or_else(|e| panic!("network namespace setup: {e}"));
        }
        olad::write_config(
            &conf,
            &[
                (
                    "ola-e131.conf",
                    format!(
                        "enabled = true\nignore_preview = true\ninput_ports = 4\noutput_ports = 4\nip = {OLA_IP}\nrevision = 0.46\nprepend_hostname = false\n"
                    ),
                ),
                (
                    "ola-artnet.conf",
                    format!(
                        "enabled = true\nip = {OLA_IP}\nnet = 0\nsubnet = 0\noutput_ports = 4\nuse_limited_broadcast = false\nuse_loopback = false\nalways_broadcast = false\nshort_name = OLA test\nlong_name = OLA test node\n"
                    ),
                ),
                (
                    "ola-port.conf",
                    patches.iter().map(|p| format!("{p}\n")).collect(),
                ),
            ],
            &["e131", "artnet"],
        );
        ola.olad = Some(olad::spawn(ns, &conf, Duration::from_secs(20)));
        ola
    }

    /// A GET on olad's HTTP API (127.0.0.1:9090 inside the namespace).
    pub fn http(&self, path: &str) -> Option<String> {
        olad::http(&self.namespace, path)
    }

    /// The 512 slots OLA holds for one of its universes (zeros past what it received).
    pub fn dmx(&self, universe: u16) -> Vec<u8> {
        let text = self
            .http(&format!("/get_dmx?u={universe}"))
            .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut slots: Vec<u8> = value["dmx"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0) as u8).collect())
            .unwrap_or_default();
        slots.resize(512, 0);
        slots
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespace, program]);
        c
    }

    /// olad's log so far, for failure messages.
    pub fn log(&self) -> String {
        olad::log_of(&self.conf)
    }
}

impl Drop for Ola {
    fn drop(&mut self) {
        olad::kill_namespace_processes(&self.namespace);
        if let Some(mut child) = self.olad.take() {
            let _ = child.wait();
        }
        let _ = run(&["ip", "netns", "del", &self.namespace]);
        let _ = std::fs::remove_dir_all(&self.conf);
    }
}
