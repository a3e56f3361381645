//! The media outputs in the stage preview: each live output's picture, small, in the top
//! right corner of the stage, with what its layers show (clip, frame, late and missed).
//!
//! The picture is the output's own texture (composited on the GPU by
//! [`rockontrol_media::output`]), drawn by egui as a user texture: no copy. Outputs up to
//! [`PREVIEW_WIDTH`] wide are drawn 1:1 (pixel-exact, so a test reads the frame number
//! back from a screenshot); wider ones are scaled down to it.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, EguiTextureHandle, egui};
use rockontrol_media::output::{LiveOutput, LiveOutputs};

use crate::UiSystems;
use crate::nodes::UiPage;
use crate::preview::StageViewport;

/// Widest picture drawn, in logical pixels.
pub const PREVIEW_WIDTH: f32 = 320.0;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<MediaPreviewLayout>().add_systems(
        EguiPrimaryContextPass,
        draw_media_previews
            .in_set(UiSystems::Panels)
            .after(crate::panels::draw_panels),
    );
}

/// Where each output's picture was drawn (logical pixels), by output name, for tests.
#[derive(Resource, Debug, Default, Clone)]
pub struct MediaPreviewLayout(pub Vec<(String, Rect)>);

/// One line under an output's picture: per layer, the clip and frame, late and missed.
pub fn status_line(live: Option<&LiveOutputs>, output: &LiveOutput) -> String {
    let o = &output.output;
    let mut line = format!("{} · {}×{} @ {}", o.name, o.width, o.height, o.rate);
    let Some(shown) = live.and_then(|l| l.0.get(&o.name)) else {
        return line;
    };
    if shown.layers.is_empty() {
        line.push_str(" · nothing playing");
    }
    for l in &shown.layers {
        line.push_str(&format!(
            "\n{}: {} frame {}{} (late {}, missed {})",
            l.layer,
            l.clip,
            l.wanted,
            match l.shown {
                Some(f) if f == l.wanted => String::new(),
                Some(f) => format!(", showing {f}"),
                None => ", none ready".into(),
            },
            l.stats.late,
            l.stats.missed
        ));
    }
    line
}

fn draw_media_previews(
    mut contexts: EguiContexts,
    outputs: Query<&LiveOutput>,
    live: Option<Res<LiveOutputs>>,
    viewport: Res<StageViewport>,
    page: Option<Res<UiPage>>,
    mut layout: ResMut<MediaPreviewLayout>,
) -> Result {
    if outputs.is_empty() || page.is_some_and(|p| *p != UiPage::Programmer) {
        return Ok(());
    }
    let mut outs: Vec<&LiveOutput> = outputs.iter().collect();
    outs.sort_by(|a, b| a.output.name.cmp(&b.output.name));
    let ids: Vec<egui::TextureId> = outs
        .iter()
        .map(|o| contexts.add_image(EguiTextureHandle::Weak(o.image.id())))
        .collect();
    let ctx = contexts.ctx_mut()?.clone();
    let area = viewport.0;
    let mut drawn = Vec::new();
    egui::Area::new("media outputs".into())
        .fixed_pos(egui::pos2(
            (area.max.x - PREVIEW_WIDTH - 16.0).round(),
            (area.min.y + 8.0).round(),
        ))
        .show(&ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.label(egui::RichText::new("Media outputs").strong());
                for (o, id) in outs.iter().zip(ids) {
                    let (w, h) = (o.output.width.max(1) as f32, o.output.height as f32);
                    let scale = (PREVIEW_WIDTH / w).min(1.0);
                    let size = egui::vec2((w * scale).round(), (h * scale).round());
                    let response = ui.image(egui::load::SizedTexture::new(id, size));
                    let r = response.rect;
                    drawn.push((
                        o.output.name.clone(),
                        Rect::new(r.min.x, r.min.y, r.max.x, r.max.y),
                    ));
                    ui.small(status_line(live.as_deref(), o));
                }
            });
        });
    layout.0 = drawn;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rockontrol_media::output::{LayerShown, OutputShown};
    use rockontrol_media::timing::FrameStats;
    use rockontrol_show::{Display, FrameRate, LedWallOutput};

    use super::*;

    #[test]
    fn the_line_under_a_picture_says_what_each_layer_shows() {
        let output = LiveOutput {
            output: LedWallOutput {
                name: "wall".into(),
                node: "node-01".into(),
                width: 320,
                height: 180,
                rate: FrameRate::NTSC,
                display: Display::Offscreen,
                regions: vec![],
            },
            display: Display::Offscreen,
            image: Handle::default(),
            window: None,
        };
        assert_eq!(status_line(None, &output), "wall · 320×180 @ 30000/1001");
        let layer = |name: &str, wanted, shown, late| LayerShown {
            layer: name.into(),
            clip: "intro".into(),
            wanted,
            shown,
            stats: FrameStats {
                shown: 10,
                late,
                missed: 0,
                skipped: 0,
            },
            decoder: None,
        };
        let live = LiveOutputs(HashMap::from([(
            "wall".to_string(),
            OutputShown {
                show_ns: 0,
                layers: vec![layer("bg", 42, Some(42), 0), layer("fx", 7, Some(5), 3)],
            },
        )]));
        assert_eq!(
            status_line(Some(&live), &output),
            "wall · 320×180 @ 30000/1001\nbg: intro frame 42 (late 0, missed 0)\n\
             fx: intro frame 7, showing 5 (late 3, missed 0)"
        );
    }
}
