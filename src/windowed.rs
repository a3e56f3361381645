//! The windowed app: what `rockontrol run SHOW` opens when a display is present.
//!
//! Bevy's rendering plugins for the features we build (window, 2D, sprites), egui and the
//! programmer UI with the live stage preview, on top of the same engine and DMX plugins the
//! headless node runs. The DMX tick stays in `FixedUpdate` at the show's rate: the window loop
//! runs continuously (also unfocused), and wire output is paced by the DMX thread, never by
//! frames. `rockontrol master` and `rockontrol receiver` open their node views the same way.

use std::path::Path;

use bevy::prelude::*;

/// Adds window, rendering, egui and [`rockontrol_ui::UiPlugin`] (saving to `show_path`).
/// The caller adds logging, the engine and outputs.
pub fn add_windowed_plugins(app: &mut App, show_path: &Path) {
    let title = format!("RocKontrol — {}", show_path.display());
    rockontrol_ui::script::add_window_and_ui(app, &title, Some(show_path.to_path_buf()));
}

/// The window of `rockontrol master` (programmer and node view) or `rockontrol receiver`
/// (receiver view, 1280×800).
#[derive(Debug, Clone)]
pub struct NodeWindow {
    pub view: rockontrol_ui::NodeView,
    pub title: String,
    pub show_path: Option<std::path::PathBuf>,
}

impl NodeWindow {
    /// A window when a display is present and `--headless` is not given.
    pub fn wanted(
        args: &crate::node_cli::NodeArgs,
        view: rockontrol_ui::NodeView,
    ) -> Option<NodeWindow> {
        if args.headless || !rockontrol_ui::script::has_display() {
            return None;
        }
        let role = match view {
            rockontrol_ui::NodeView::Receiver => "receiver",
            _ => "master",
        };
        Some(NodeWindow {
            view,
            title: format!("RocKontrol {role} — {}", args.config.display()),
            show_path: args.show.clone(),
        })
    }
}

/// Adds window, rendering, egui and the node's view. The caller adds logging, the engine,
/// outputs and the network plugin of the role.
pub fn add_node_window(app: &mut App, window: NodeWindow) {
    rockontrol_ui::script::add_window_and_view(app, &window.title, window.show_path, window.view);
}
