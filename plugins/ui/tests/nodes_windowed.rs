//! The master and receiver windows with real nodes on loopback, driven as a user would, on a
//! private Xvfb with Mesa's lavapipe (one child process per window: winit wants the main
//! thread, once).
//!
//! - master: two receivers come online in the topology and the matrix, the third configured
//!   node stays offline (red); a connection test measures a round trip; assigning universe 1
//!   to a second node marks a conflict (red cells, an alert); a command that fails four times
//!   degrades a node (amber). Pixels of the screenshots are checked for each colour.
//! - receiver: connects to a headless master, gets its show and its GO; ping master answers;
//!   the test pattern drives Par 1 to full red on the wire; when the master stops, the badge
//!   turns red with a reconnect countdown and the command log says so.
//!
//! The steps are `rockontrol_ui::scenes::{master_steps, receiver_steps}`, the same the README
//! screenshots are made with.

use rockontrol_show::parse_show;
use rockontrol_ui::scenes::{master_scene, master_steps, receiver_scene, receiver_steps};
use rockontrol_ui::script::{UiScript, rerun_on_xvfb};

const DEMO: &str = include_str!("../../../shows/demo.ron");
const CHILD: &str = "ROCKONTROL_UI_NODES_CHILD";

fn main() {
    let Some(scenario) = std::env::var_os(CHILD) else {
        for scenario in ["master", "receiver"] {
            let status = rerun_on_xvfb(&[(CHILD, scenario)]).unwrap_or_else(|e| panic!("{e}"));
            assert!(status.success(), "the {scenario} scenario failed: {status}");
            println!("{scenario} scenario: ok");
        }
        return;
    };
    let show = parse_show(DEMO, "demo.ron").expect("demo show parses");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-test");
    let exit = match scenario.to_str() {
        Some("master") => master_scene(&show, None, UiScript::new(master_steps(Some(&out)))).run(),
        Some("receiver") => receiver_scene(&show, UiScript::new(receiver_steps(Some(&out)))).run(),
        other => panic!("unknown scenario {other:?}"),
    };
    std::process::exit(if exit.is_success() { 0 } else { 1 });
}
