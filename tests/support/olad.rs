//! OLA's `olad` as a process inside a network namespace: its config folder, its start as the
//! package's `olad` user (it refuses to run as root), its HTTP API, its end.
//!
//! Standard library only, so the DMX output bench (`plugins/dmx/benches/output.rs`) includes
//! this very file by path; the interop tests reach it through [`super::ola`]. The namespaces
//! themselves differ per user (one bridge for the tests, a veth pair for the bench) and are
//! set up by the caller.

#![allow(dead_code, reason = "each user takes part of this")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every olad plugin that may probe hardware or the network; all but the ones a run names are
/// switched off.
const PLUGINS: [&str; 23] = [
    "artnet",
    "dmx4linux",
    "dummy",
    "e131",
    "espnet",
    "ftdidmx",
    "gpio",
    "karate",
    "kinet",
    "milinst",
    "nanoleaf",
    "opendmx",
    "openpixelcontrol",
    "osc",
    "pathport",
    "renard",
    "sandnet",
    "shownet",
    "spi",
    "stageprofi",
    "uartdmx",
    "usbdmx",
    "usbserial",
];

/// Runs a command to completion: `Err` with its standard error when it fails.
pub fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e} (run `./dev setup`)", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Writes olad's config folder afresh: `files` (`ola-e131.conf`, `ola-port.conf`, …), every
/// plugin not named in `enabled` switched off, all owned by the `olad` user.
pub fn write_config(conf: &Path, files: &[(&str, String)], enabled: &[&str]) {
    let _ = std::fs::remove_dir_all(conf);
    std::fs::create_dir_all(conf).expect("olad config dir");
    let write =
        |file: &str, text: &str| std::fs::write(conf.join(file), text).expect("olad config");
    for (file, text) in files {
        write(file, text);
    }
    for plugin in PLUGINS.iter().filter(|p| !enabled.contains(p)) {
        write(&format!("ola-{plugin}.conf"), "enabled = false\n");
    }
    run(&["chown", "-R", "olad", conf.to_str().expect("utf8 path")]).expect("chown olad config");
}

/// Starts olad in `namespace` with the config in `conf` (its log in `conf/olad.log`) and waits
/// up to `timeout` for its HTTP API.
pub fn spawn(namespace: &str, conf: &Path, timeout: Duration) -> Child {
    let log = std::fs::File::create(conf.join("olad.log")).expect("log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace])
        .args([
            "setpriv",
            "--reuid=olad",
            "--regid=nogroup",
            "--clear-groups",
        ])
        .args(["olad", "-c", conf.to_str().expect("utf8"), "-l", "3"])
        .arg("--no-register-with-dns-sd")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start olad ({e}): install OLA with `./dev setup`"));
    let deadline = Instant::now() + timeout;
    while http(namespace, "/json/server_stats").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "olad did not answer on its HTTP port within {} s; its log:\n{}",
                timeout.as_secs(),
                log_of(conf)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

/// A GET on olad's HTTP API (127.0.0.1:9090 inside `namespace`).
pub fn http(namespace: &str, path: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", namespace, "curl", "-sf", "--max-time", "2"])
        .arg(format!("http://127.0.0.1:9090{path}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// olad's log so far, for failure messages.
pub fn log_of(conf: &Path) -> String {
    std::fs::read_to_string(conf.join("olad.log")).unwrap_or_default()
}

/// Signals every process in `namespace` to end (olad runs there as another user under
/// `ip netns exec`, so its own `Child` cannot reach it).
pub fn kill_namespace_processes(namespace: &str) {
    if let Ok(out) = Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}
