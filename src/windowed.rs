//! The windowed app: what `rockontrol run SHOW` opens when a display is present.
//!
//! Bevy's rendering plugins for the features we build (window, 2D, sprites), egui and the
//! programmer UI with the live stage preview, on top of the same engine and DMX plugins the
//! headless node runs. The DMX tick stays in `FixedUpdate` at the show's rate: the window loop
//! runs continuously (also unfocused), and wire output is paced by the DMX thread, never by
//! frames. `rockontrol master` and `rockontrol receiver` open their node views the same way.
//!
//! Only with the `ui` feature (the default). A build without it (`--no-default-features`)
//! links no rendering, window or egui: every command runs headless.

use std::path::{Path, PathBuf};

use bevy::prelude::*;

/// Which node view a window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Receiver,
}

/// Whether a window opens: a display is present, `--headless` is not given, and this build
/// has the UI.
pub fn wanted(headless: bool) -> bool {
    if headless || !has_display() {
        return false;
    }
    if !cfg!(feature = "ui") {
        info!("this build has no UI (built without the `ui` feature): running headless");
        return false;
    }
    true
}

fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// The window of `rockontrol master` (programmer and node view) or `rockontrol receiver`
/// (receiver view, 1280×800).
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "ui"),
    allow(
        dead_code,
        reason = "without the `ui` feature no window is opened from it"
    )
)]
pub struct NodeWindow {
    pub role: Role,
    pub title: String,
    pub show_path: Option<PathBuf>,
    /// Media outputs of this node on screen.
    pub media: MediaWindows,
}

/// Which media outputs a window app shows, and where.
#[derive(Debug, Clone, Default)]
#[cfg_attr(
    not(feature = "ui"),
    allow(
        dead_code,
        reason = "without the `ui` feature no window is opened from it"
    )
)]
pub struct MediaWindows {
    /// The node whose outputs are shown (`None`: every output, for `run`).
    pub node: Option<String>,
    /// `--fullscreen --monitor N`: every output fullscreen on monitor N.
    pub fullscreen: Option<u32>,
    /// Where clip files are (`NAME.mp4|mov|mkv`).
    pub clips_dir: Option<PathBuf>,
}

impl NodeWindow {
    /// A window when one is [`wanted`].
    pub fn wanted(args: &crate::node_cli::NodeArgs, role: Role) -> Option<NodeWindow> {
        if !wanted(args.headless) {
            return None;
        }
        let name = match role {
            Role::Receiver => "receiver",
            Role::Master => "master",
        };
        Some(NodeWindow {
            role,
            title: format!("RocKontrol {name} — {}", args.config.display()),
            show_path: args.show.clone(),
            media: MediaWindows::default(),
        })
    }

    /// Shows the media outputs of node `node` (in windows, or fullscreen with `--fullscreen`).
    pub fn with_media(mut self, args: &crate::node_cli::NodeArgs, node: &str) -> Self {
        self.media = MediaWindows {
            node: Some(node.to_owned()),
            fullscreen: args.fullscreen.then_some(args.monitor),
            clips_dir: args.clips_dir.clone().or_else(|| {
                args.show
                    .as_ref()
                    .and_then(|s| s.parent())
                    .map(|d| d.join("clips"))
            }),
        };
        self
    }
}

/// Adds the live media outputs (windows for the outputs that have one; pictures for the
/// stage preview).
#[cfg(feature = "ui")]
fn add_media_outputs(app: &mut App, media: MediaWindows) {
    use rockontrol_media::output::{MediaClipFiles, MediaOutputPlugin};
    app.add_plugins(MediaOutputPlugin {
        node: media.node,
        display: media.fullscreen.map(rockontrol_show::Display::Fullscreen),
        clips: MediaClipFiles {
            files: Default::default(),
            dir: media.clips_dir,
        },
    });
}

/// Adds window, rendering, egui and [`rockontrol_ui::UiPlugin`] (saving to `show_path`).
/// The caller adds logging, the engine and outputs.
#[cfg(feature = "ui")]
pub fn add_windowed_plugins(app: &mut App, show_path: &Path) {
    let title = format!("RocKontrol — {}", show_path.display());
    rockontrol_ui::script::add_window_and_ui(app, &title, Some(show_path.to_path_buf()));
    add_media_outputs(
        app,
        MediaWindows {
            node: None,
            fullscreen: None,
            clips_dir: show_path.parent().map(|d| d.join("clips")),
        },
    );
}

/// Without the UI there is no window ([`wanted`] is always false); the app stays headless.
#[cfg(not(feature = "ui"))]
pub fn add_windowed_plugins(app: &mut App, show_path: &Path) {
    let _ = show_path;
    rockontrol_net::app::add_headless_loop(app);
}

/// Adds window, rendering, egui and the node's view. The caller adds logging, the engine,
/// outputs and the network plugin of the role.
#[cfg(feature = "ui")]
pub fn add_node_window(app: &mut App, window: NodeWindow) {
    let view = match window.role {
        Role::Master => rockontrol_ui::NodeView::Master,
        Role::Receiver => rockontrol_ui::NodeView::Receiver,
    };
    rockontrol_ui::script::add_window_and_view(app, &window.title, window.show_path, view);
    add_media_outputs(app, window.media);
}

/// Without the UI there is no window ([`wanted`] is always false); the app stays headless.
#[cfg(not(feature = "ui"))]
pub fn add_node_window(app: &mut App, window: NodeWindow) {
    let _ = window;
    rockontrol_net::app::add_headless_loop(app);
}
