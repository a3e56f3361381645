//! The RocKontrol programmer UI: egui panels over a live stage preview drawn by Bevy.
//!
//! [`UiPlugin`] runs inside the windowed app next to the engine. Everything the operator does
//! becomes a [`UiAction`] pushed on [`UiActions`]; one exclusive system applies them to the
//! world (programmer values, cue lists, fixture positions, engine commands) with undo/redo.
//! Tests, the screenshot command and the benchmark drive the UI through the same actions
//! (see [`script`]), so what they check is what a click does.
//!
//! # Layout
//! - [`actions`]: [`UiAction`], [`UiState`] (selection, unsaved changes, undo history) and the
//!   system that applies actions.
//! - [`panels`]: the egui panels: fixtures and groups, programmer (intensity, colour, pan/tilt
//!   pad, other attributes), playbacks with masters, cue table, universe view.
//! - [`preview`]: the 2D stage view: one sprite per fixture coloured by the live output frame,
//!   beams for moving heads, drag to move fixtures.
//! - [`live`]: per-fixture live values read from the engine's latest frame.
//! - [`media_preview`]: each live media output's picture, small, over the stage preview.
//! - [`nodes`]: the master's node view: topology, universe matrix, node graphs, alerts,
//!   quick actions, on the real registry of [`rockontrol_net::MasterNet`].
//! - [`receiver`]: the receiver's window (Steam Deck sized): master connection, local output,
//!   resources, troubleshooting, command log.
//! - [`scenes`]: a master or receiver window with real peer nodes on loopback (tests,
//!   screenshots, benchmark).
//! - [`script`]: scripted runs (tests, screenshots, frame-time benchmark).

pub mod actions;
pub mod live;
pub mod media_preview;
pub mod nodes;
pub mod panels;
pub mod preview;
pub mod receiver;
pub mod scenes;
pub mod script;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy_egui::EguiPrimaryContextPass;

pub use actions::{UiAction, UiActions, UiState};
pub use script::{ScriptStep, UiScript};

/// The programmer UI and stage preview. Needs the engine ([`rockontrol_engine::EnginePlugin`]),
/// rendering and [`bevy_egui::EguiPlugin`].
#[derive(Debug, Default, Clone)]
pub struct UiPlugin {
    /// Where Save writes the show (RON). `None`: saving is refused with a message.
    pub show_path: Option<PathBuf>,
    /// Which window this is.
    pub view: NodeView,
}

/// Which window the UI draws.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum NodeView {
    /// `rockontrol run`: the programmer with the stage preview.
    #[default]
    Programmer,
    /// `rockontrol master`: the programmer, and the node view on a second page (needs
    /// [`rockontrol_net::MasterPlugin`]).
    Master,
    /// `rockontrol receiver`: the receiver view only (needs [`rockontrol_net::ReceiverPlugin`]).
    Receiver,
}

/// The UI's systems. Actions apply in `Update`; the preview follows in `PostUpdate`; egui
/// panels draw in bevy_egui's context pass and push actions for the next frame.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum UiSystems {
    /// Apply queued [`UiAction`]s to the world.
    Actions,
    /// Update the stage preview from the latest frame; fixture dragging.
    Preview,
    /// Draw the egui panels.
    Panels,
}

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        programming_plugin(app, self.show_path.clone());
        app.insert_resource(ClearColor(Color::srgb(0.06, 0.06, 0.08)))
            .configure_sets(EguiPrimaryContextPass, UiSystems::Panels);
        match self.view {
            NodeView::Programmer => {
                preview::plugin(app);
                panels::plugin(app);
                media_preview::plugin(app);
            }
            NodeView::Master => {
                preview::plugin(app);
                panels::plugin(app);
                media_preview::plugin(app);
                nodes::plugin(app);
            }
            NodeView::Receiver => receiver::plugin(app),
        }
    }
}

/// The UI's model without any window: the programmer, [`UiAction`]s with undo/redo, save,
/// and live fixture values. [`UiPlugin`] adds it; headless tests use it alone.
pub fn programming_plugin(app: &mut App, show_path: Option<PathBuf>) {
    if !app.is_plugin_added::<rockontrol_engine::ProgrammerPlugin>() {
        app.add_plugins(rockontrol_engine::ProgrammerPlugin);
    }
    app.insert_resource(UiState::new(show_path))
        .init_resource::<UiActions>()
        .configure_sets(Update, (UiSystems::Actions, UiSystems::Preview).chain());
    actions::plugin(app);
    live::plugin(app);
}
