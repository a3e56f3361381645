//! The windowed app: what `rockontrol run SHOW` opens when a display is present.
//!
//! Bevy's rendering plugins for the features we build (window, 2D, sprites), egui and the
//! programmer UI with the live stage preview, on top of the same engine and DMX plugins the
//! headless node runs. The DMX tick stays in `FixedUpdate` at the show's rate: the window loop
//! runs continuously (also unfocused), and wire output is paced by the DMX thread, never by
//! frames.

use std::path::Path;

use bevy::prelude::*;

/// Adds window, rendering, egui and [`rockontrol_ui::UiPlugin`] (saving to `show_path`).
/// The caller adds logging, the engine and outputs.
pub fn add_windowed_plugins(app: &mut App, show_path: &Path) {
    let title = format!("RocKontrol — {}", show_path.display());
    rockontrol_ui::script::add_window_and_ui(app, &title, Some(show_path.to_path_buf()));
}
