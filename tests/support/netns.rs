//! A small rig of network namespaces for end-to-end tests (root only): one bridge in the
//! test's own namespace with an address, and N namespaces each joined to it by a veth pair.
//! Processes started with [`NetRig::command`] run inside a namespace and reach the bridge's
//! address (and each other) across the veths, so what they send crosses a real interface
//! that a capture on the bridge sees, with the kernel's timestamps.
//!
//! Everything is removed on drop, also when the test panics; names carry the test process's
//! id, so concurrent runs do not collide, and leftovers of a killed run with the same id are
//! removed before the rig is built.
//!
//! Shared by the test crates by path or through `support`.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Runs `ip ARGS`; the error names the command and what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`ip {}` did not start: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The rig (see the [module docs](self)).
pub struct NetRig {
    /// The bridge's name (a capture interface).
    pub bridge: String,
    /// The bridge's address, in the test's namespace.
    pub bridge_ip: Ipv4Addr,
    namespaces: Vec<String>,
    host_veths: Vec<String>,
    ips: Vec<Ipv4Addr>,
}

impl NetRig {
    /// A bridge and `n` namespaces (at most 8). Fails with what `ip` said (not root, no
    /// netns support).
    pub fn create(n: usize) -> Result<NetRig, String> {
        assert!(n <= 8, "at most 8 namespaces");
        let id = std::process::id() % 100_000;
        let subnet = (std::process::id() % 200 + 20) as u8;
        let mut rig = NetRig {
            bridge: format!("rkbr{id}"),
            bridge_ip: Ipv4Addr::new(10, 213, subnet, 1),
            namespaces: (0..n).map(|i| format!("rk-{id}-{i}")).collect(),
            host_veths: (0..n).map(|i| format!("rkh{id}x{i}")).collect(),
            ips: (0..n)
                .map(|i| Ipv4Addr::new(10, 213, subnet, 11 + i as u8))
                .collect(),
        };
        rig.remove();
        rig.build()?;
        Ok(rig)
    }

    fn build(&mut self) -> Result<(), String> {
        let br = self.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", self.bridge_ip), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..self.namespaces.len() {
            let ns = self.namespaces[i].clone();
            let host = self.host_veths[i].clone();
            let inner = format!("{host}n");
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &br])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.ips[i]),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        }
        Ok(())
    }

    /// Removes whatever of the rig exists (errors ignored: parts may be gone already).
    fn remove(&self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "delete", ns]);
        }
        for host in &self.host_veths {
            let _ = ip(&["link", "delete", host]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }

    /// Namespace `i`'s name.
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// Namespace `i`'s address on the bridge's subnet.
    pub fn ip_of(&self, i: usize) -> Ipv4Addr {
        self.ips[i]
    }

    /// `program` to run inside namespace `i` (`ip netns exec`, which execs it: the child is
    /// the program itself, so killing the child kills it).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespaces[i], program]);
        cmd
    }
}

impl Drop for NetRig {
    fn drop(&mut self) {
        self.remove();
    }
}
