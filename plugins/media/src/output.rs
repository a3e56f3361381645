//! Live outputs on screen (feature `window`): each [`LedWallOutput`] of this node is
//! composited every refresh on Bevy's own render device, straight into the texture its window
//! (and the stage preview) samples, with no copy through memory.
//!
//! - **Main world** ([`MediaOutputPlugin`]): one [`LiveOutput`] per output of this node, with
//!   an `Image` (the output texture) and, for `Window` or `Fullscreen(monitor)` outputs, a
//!   window with a camera and one sprite per region (or one sprite filling the window). Each
//!   frame, [`pick_frames`] takes every layer's frame from the node's player
//!   ([`crate::player`], through [`PlaybackFrames`]): one decode path for capture, status and
//!   screens. The player opens the decoders (from the library store, or `--clips-dir`), picks
//!   the frame the show clock gives at the output's refresh `t_k` (Xvfb and most platforms
//!   give no scanout timing through wgpu, so the scanout is predicted from the grid of the
//!   frames the app presents, [`measure_displays`]) and counts late and missed frames once
//!   per refresh. With this plugin
//!   the decoders give NV12 ([`GpuFrames`]) unless the node captures (CPU compositor, RGBA).
//! - [`measure_displays`] fits a refresh grid (period and phase, [`RefreshGrid::fit`]) to the
//!   frames the app presents and hands it, with each output's display, to the player
//!   ([`DisplayTimings`]), which predicts each frame's scanout from it.
//! - **Render world**: the draw lists are extracted, and [`composite_outputs`] uploads the
//!   frames that changed into the layers' persistent textures (NV12 planes, converted in the
//!   shader) and composites them into the output `Image`'s GPU texture through a
//!   `Rgba8Unorm` view, before Bevy's render graph draws the windows. The image is sampled
//!   through an sRGB view of the same texture, so the display shows the composited bytes.
//!
//! What every output shows is published in [`LiveOutputs`] (show time, wanted and shown
//! frame per layer, late and missed counts, all from the player): the screenshot test reads
//! the frame number back from the window's pixels and compares.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy::render::render_asset::{RenderAssets, prepare_assets};
use bevy::render::render_resource::{
    Extent3d, TextureDimension, TextureFormat, TextureUsages, TextureViewDescriptor,
};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use bevy::render::{Extract, ExtractSchedule, Render, RenderApp, RenderSystems};
use bevy::window::{
    Monitor, MonitorSelection, PresentMode, WindowMode, WindowPosition, WindowRef, WindowResolution,
};
use rockontrol_show::{Display, LedWallOutput};

use rockontrol_engine::ShowTimeBase;

use crate::decode::{DecoderChoice, Frame};
use crate::gpu::{FORMAT, GpuContext, LayerDraw, OutputCompositor};
pub use crate::player::MediaClipFiles;
use crate::player::{DisplayTiming, DisplayTimings, PlaybackFrames};
use crate::plugin::{GpuFrames, MediaNode, MediaShow, MediaSystems};
use crate::regions::{Placed, placements, region_problems};
use crate::timing::{FrameStats, RefreshGrid};

/// Render layers of output windows start here (the stage preview and UI use layer 0).
const FIRST_RENDER_LAYER: usize = 16;
/// Presented frames whose spacing gives the display's measured period.
const TIMING_WINDOW: usize = 64;

/// Live media outputs on screen (see the [module docs](self)). Needs [`crate::MediaPlugin`]
/// and Bevy's rendering plugins. Where no [`MediaNode`] is inserted (later inserts replace
/// it: a receiver's library store), it plays `node`'s outputs from `clips`.
#[derive(Debug, Clone, Default)]
pub struct MediaOutputPlugin {
    /// This node's name: its outputs are shown. `None`: every output of the show (`run`).
    pub node: Option<String>,
    /// Where every output goes instead of its `display` in the show (`receiver --fullscreen`).
    pub display: Option<Display>,
    /// Where clip files are (for the [`MediaNode`] this plugin inserts where none is).
    pub clips: MediaClipFiles,
}

#[derive(Resource, Debug, Clone)]
struct OutputSettings {
    display: Option<Display>,
}

/// One output of this node, live.
#[derive(Component, Debug, Clone)]
pub struct LiveOutput {
    pub output: LedWallOutput,
    /// Where it is shown (the show's `display`, or the command line's).
    pub display: Display,
    /// The composited picture (a GPU texture; the stage preview shows it too).
    pub image: Handle<Image>,
    /// Its window, unless offscreen.
    pub window: Option<Entity>,
}

/// A sprite showing one rectangle of an output in the output's window.
#[derive(Component, Debug, Clone, Copy)]
struct OutputSprite {
    window: Entity,
    placed: Placed,
    /// Fills the window (an output without regions).
    fill: bool,
}

/// An entity made for an output (window, camera, sprite), despawned with it.
#[derive(Component, Debug)]
struct OutputPart;

/// What one layer of a live output shows this refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShown {
    pub layer: String,
    pub clip: String,
    /// The content frame the show clock chose.
    pub wanted: u64,
    /// The frame drawn (the wanted one, or an earlier stand-in); `None`: missed.
    pub shown: Option<u64>,
    pub stats: FrameStats,
    /// The decoder element (`avdec_h264`, …), once open.
    pub decoder: Option<String>,
}

/// What one live output shows this refresh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputShown {
    /// Show time of the refresh the frames were chosen for, in nanoseconds.
    pub show_ns: u64,
    pub layers: Vec<LayerShown>,
}

/// What every live output shows, by output name (status, tests).
#[derive(Resource, Debug, Clone, Default)]
pub struct LiveOutputs(pub HashMap<String, OutputShown>);

/// One layer to composite: its slot, the frame and how.
#[derive(Debug, Clone)]
struct DrawLayer {
    slot: usize,
    frame: Frame,
    draw: LayerDraw,
}

/// The draw lists of this refresh, by output image (extracted into the render world).
#[derive(Resource, Debug, Clone, Default)]
struct OutputDraws(HashMap<AssetId<Image>, DrawList>);

#[derive(Debug, Clone)]
struct DrawList {
    width: u32,
    height: u32,
    slots: usize,
    layers: Vec<DrawLayer>,
}

impl Plugin for MediaOutputPlugin {
    fn build(&self, app: &mut App) {
        if !app.world().contains_resource::<MediaNode>() {
            app.insert_resource(MediaNode {
                node: self.node.clone(),
                locate: self.clips.locator(),
                decoder: DecoderChoice::Software,
                capture: None,
            });
        }
        app.insert_resource(self.clips.clone())
            .insert_resource(OutputSettings {
                display: self.display.clone(),
            })
            .insert_resource(GpuFrames)
            .init_resource::<LiveOutputs>()
            .init_resource::<DisplayTimings>()
            .init_resource::<OutputDraws>()
            .add_systems(Update, measure_displays.before(MediaSystems::Play))
            .add_systems(
                Update,
                (sync_outputs, fill_monitors, pick_frames, fit_sprites)
                    .chain()
                    .after(MediaSystems::Play),
            );
        if let Some(render) = app.get_sub_app_mut(RenderApp) {
            render
                .init_resource::<RenderCompositors>()
                .add_systems(ExtractSchedule, extract_draws)
                .add_systems(
                    Render,
                    composite_outputs
                        .in_set(RenderSystems::Prepare)
                        .after(prepare_assets::<GpuImage>),
                );
        } else {
            warn!("media outputs: no render app (rendering plugins missing); nothing is shown");
        }
    }
}

/// The texture an output is composited into: `Rgba8Unorm` (what the compositor writes),
/// sampled through an `Rgba8UnormSrgb` view so the display shows the bytes as they are.
pub fn output_image(width: u32, height: u32) -> Image {
    let mut image = Image::new_uninit(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        FORMAT,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage = TextureUsages::TEXTURE_BINDING
        | TextureUsages::RENDER_ATTACHMENT
        | TextureUsages::COPY_SRC
        | TextureUsages::COPY_DST;
    image.texture_descriptor.view_formats = &[TextureFormat::Rgba8UnormSrgb];
    image.texture_view_descriptor = Some(TextureViewDescriptor {
        format: Some(TextureFormat::Rgba8UnormSrgb),
        ..default()
    });
    image.sampler = ImageSampler::nearest();
    image
}

/// Makes the outputs of this node when the show's media changes (and removes the old ones):
/// those the player plays ([`MediaNode::node`]; a master shows its own outputs).
#[allow(clippy::too_many_arguments, reason = "a Bevy system's parameters")]
fn sync_outputs(
    mut commands: Commands,
    show: Res<MediaShow>,
    settings: Res<OutputSettings>,
    player: Res<MediaNode>,
    outputs: Query<(Entity, &LiveOutput)>,
    parts: Query<Entity, With<OutputPart>>,
    mut images: ResMut<Assets<Image>>,
    mut built: Local<Option<Vec<LedWallOutput>>>,
) {
    let mine: Vec<LedWallOutput> = show
        .0
        .setup()
        .outputs
        .iter()
        .filter(|o| player.node.as_ref().is_none_or(|n| *n == o.node))
        .cloned()
        .collect();
    if built.as_ref() == Some(&mine) {
        return;
    }
    for (e, _) in &outputs {
        commands.entity(e).despawn();
    }
    for e in &parts {
        commands.entity(e).despawn();
    }
    for (i, output) in mine.iter().enumerate() {
        for problem in region_problems(output) {
            warn!("media: {problem}");
        }
        let shown_on = settings
            .display
            .clone()
            .unwrap_or_else(|| output.display.clone());
        let image = images.add(output_image(output.width, output.height));
        let window = match shown_on {
            Display::Offscreen => None,
            Display::Window | Display::Fullscreen(_) => {
                let mode = match shown_on {
                    Display::Fullscreen(m) => {
                        WindowMode::BorderlessFullscreen(MonitorSelection::Index(m as usize))
                    }
                    _ => WindowMode::Windowed,
                };
                let (w, h) = display_size(output);
                let window = commands
                    .spawn((
                        Window {
                            title: format!("RocKontrol output {}", output.name),
                            resolution: WindowResolution::new(w, h).with_scale_factor_override(1.0),
                            mode,
                            present_mode: PresentMode::AutoVsync,
                            ..default()
                        },
                        OutputPart,
                    ))
                    .id();
                let layer = RenderLayers::layer(FIRST_RENDER_LAYER + i);
                commands.spawn((
                    Camera2d,
                    Camera {
                        order: 100 + i as isize,
                        clear_color: ClearColorConfig::Custom(Color::BLACK),
                        ..default()
                    },
                    RenderTarget::Window(WindowRef::Entity(window)),
                    layer.clone(),
                    OutputPart,
                ));
                let fill = output.regions.is_empty();
                for placed in placements(output) {
                    let (x, y, w, h) = placed.src;
                    commands.spawn((
                        Sprite {
                            image: image.clone(),
                            rect: Some(Rect::new(
                                x as f32,
                                y as f32,
                                (x + w) as f32,
                                (y + h) as f32,
                            )),
                            custom_size: Some(Vec2::new(w as f32, h as f32)),
                            ..default()
                        },
                        Transform::default(),
                        layer.clone(),
                        OutputSprite {
                            window,
                            placed,
                            fill,
                        },
                        OutputPart,
                    ));
                }
                Some(window)
            }
        };
        info!(
            output = %output.name,
            width = output.width,
            height = output.height,
            rate = %output.rate,
            display = ?shown_on,
            regions = output.regions.len(),
            "media output live"
        );
        commands.spawn(LiveOutput {
            output: output.clone(),
            display: shown_on,
            image,
            window,
        });
    }
    *built = Some(mine);
}

/// The size a window starts at: the regions' extent on the display, or the canvas.
fn display_size(output: &LedWallOutput) -> (u32, u32) {
    placements(output).iter().fold((1, 1), |(w, h), p| {
        (
            w.max((p.dst.0.max(0) as u32).saturating_add(p.src.2)),
            h.max((p.dst.1.max(0) as u32).saturating_add(p.src.3)),
        )
    })
}

/// Makes a fullscreen output's window cover its monitor. A window manager does that for the
/// fullscreen request; without one (a kiosk X server, Xvfb) the window would keep its size.
fn fill_monitors(
    outputs: Query<&LiveOutput>,
    monitors: Query<&Monitor>,
    mut windows: Query<&mut Window>,
) {
    for out in &outputs {
        let (Display::Fullscreen(n), Some(w)) = (&out.display, out.window) else {
            continue;
        };
        let Some(monitor) = monitors.iter().nth(*n as usize) else {
            continue;
        };
        let Ok(mut window) = windows.get_mut(w) else {
            continue;
        };
        let size = (monitor.physical_width, monitor.physical_height);
        if (window.physical_width(), window.physical_height()) != size {
            info!(
                output = %out.output.name,
                monitor = n,
                width = size.0,
                height = size.1,
                "media: fullscreen window sized to its monitor"
            );
            window.resolution.set_physical_resolution(size.0, size.1);
            window.position = WindowPosition::At(monitor.physical_position);
        }
    }
}

/// Places the region sprites in their windows (display pixels, top-left origin).
fn fit_sprites(
    windows: Query<&Window>,
    mut sprites: Query<(&OutputSprite, &mut Sprite, &mut Transform)>,
) {
    for (s, mut sprite, mut transform) in &mut sprites {
        let Ok(window) = windows.get(s.window) else {
            continue;
        };
        let (ww, wh) = (window.width(), window.height());
        let (size, centre) = if s.fill {
            (Vec2::new(ww, wh), Vec2::ZERO)
        } else {
            let (_, _, w, h) = s.placed.src;
            let (x, y) = (s.placed.dst.0 as f32, s.placed.dst.1 as f32);
            (
                Vec2::new(w as f32, h as f32),
                Vec2::new(x + w as f32 / 2.0 - ww / 2.0, wh / 2.0 - y - h as f32 / 2.0),
            )
        };
        if sprite.custom_size != Some(size) {
            sprite.custom_size = Some(size);
        }
        if transform.translation.truncate() != centre {
            transform.translation = centre.extend(0.0);
        }
    }
}

/// Takes every layer's frame of this refresh from the player (never waits, never decodes).
fn pick_frames(
    show: Res<MediaShow>,
    frames: Res<PlaybackFrames>,
    outputs: Query<&LiveOutput>,
    mut live: ResMut<LiveOutputs>,
    mut draws: ResMut<OutputDraws>,
) {
    let setup = show.0.setup();
    let mut new_draws = HashMap::new();
    live.0.clear();
    for out in &outputs {
        let name = &out.output.name;
        let layer_indices: Vec<usize> = setup
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.output == *name)
            .map(|(i, _)| i)
            .collect();
        let mut list = DrawList {
            width: out.output.width,
            height: out.output.height,
            slots: layer_indices.len(),
            layers: Vec::new(),
        };
        let Some(refresh) = frames.0.get(name) else {
            live.0.insert(name.clone(), OutputShown::default());
            new_draws.insert(out.image.id(), list);
            continue;
        };
        let mut shown = OutputShown {
            show_ns: refresh.show_ns,
            layers: Vec::new(),
        };
        for l in &refresh.layers {
            shown.layers.push(LayerShown {
                layer: l.name.clone(),
                clip: l.clip.clone(),
                wanted: l.wanted,
                shown: l.frame.as_ref().map(|f| f.index),
                stats: l.stats,
                decoder: Some(l.decoder.clone()),
            });
            let Some(frame) = &l.frame else {
                continue;
            };
            let slot = layer_indices
                .iter()
                .position(|i| *i == l.layer)
                .unwrap_or(0);
            list.layers.push(DrawLayer {
                slot,
                frame: frame.clone(),
                draw: LayerDraw {
                    slot,
                    params: l.params,
                },
            });
        }
        live.0.insert(name.clone(), shown);
        new_draws.insert(out.image.id(), list);
    }
    draws.0 = new_draws;
}

/// Measures the frames the app presents (a refresh grid fitted to the last
/// [`TIMING_WINDOW`] frames' show times: period and phase) and publishes it with each
/// output's display for the player, which predicts scanouts from it. wgpu gives no scanout
/// timestamps here; the swapchain paces the loop, so a frame starts just after a vblank.
fn measure_displays(
    base: Res<ShowTimeBase>,
    outputs: Query<&LiveOutput>,
    mut timings: ResMut<DisplayTimings>,
    mut seen: Local<VecDeque<u64>>,
) {
    let now = base.show_ns_at(Instant::now());
    seen.push_back(now);
    while seen.len() > TIMING_WINDOW {
        seen.pop_front();
    }
    let grid = RefreshGrid::fit(seen.make_contiguous());
    timings.0.clear();
    for out in &outputs {
        let display = match &out.display {
            Display::Offscreen => "offscreen".to_string(),
            Display::Window => "window".to_string(),
            Display::Fullscreen(n) => format!("fullscreen {n}"),
        };
        let on_screen = out.window.is_some();
        timings.0.insert(
            out.output.name.clone(),
            DisplayTiming {
                display,
                period_ns: grid.filter(|_| on_screen).map(|g| g.period_ns),
                phase_ns: grid.filter(|_| on_screen).map(|g| g.phase_ns),
            },
        );
    }
}

fn extract_draws(mut commands: Commands, draws: Extract<Res<OutputDraws>>) {
    commands.insert_resource(draws.clone());
}

/// The compositor of each output image, on Bevy's device, and what its slots hold.
#[derive(Resource, Default)]
struct RenderCompositors {
    gpu: Option<GpuContext>,
    outputs: HashMap<AssetId<Image>, RenderOutput>,
}

struct RenderOutput {
    compositor: OutputCompositor,
    view: wgpu::TextureView,
    /// The frame data each slot holds (skipped when the same frame comes again).
    uploaded: Vec<Option<Arc<Vec<u8>>>>,
}

/// Uploads changed frames and composites every output into its image's texture.
fn composite_outputs(
    draws: Option<Res<OutputDraws>>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    mut state: ResMut<RenderCompositors>,
) {
    let Some(draws) = draws else {
        return;
    };
    let state = &mut *state;
    let gpu = state.gpu.get_or_insert_with(|| GpuContext {
        device: device.wgpu_device().clone(),
        queue: (**queue.0).clone(),
        adapter: "Bevy's render device".into(),
    });
    state.outputs.retain(|id, _| draws.0.contains_key(id));
    for (id, list) in &draws.0 {
        let Some(image) = images.get(*id) else {
            continue; // the texture is made on the next frame
        };
        let entry = state.outputs.entry(*id).or_insert_with(|| {
            let texture: &wgpu::Texture = &image.texture;
            let view = texture.create_view(&wgpu::TextureViewDescriptor {
                label: Some("media output (compositor)"),
                format: Some(FORMAT),
                ..Default::default()
            });
            RenderOutput {
                compositor: OutputCompositor::without_target(
                    gpu,
                    list.width,
                    list.height,
                    list.slots,
                ),
                view,
                uploaded: vec![None; list.slots],
            }
        });
        for l in &list.layers {
            let held = entry.uploaded.get(l.slot).and_then(|u| u.as_ref());
            if held.is_some_and(|d| Arc::ptr_eq(d, &l.frame.data)) {
                continue;
            }
            match entry.compositor.upload_frame(gpu, l.slot, &l.frame) {
                Ok(()) => {
                    if let Some(u) = entry.uploaded.get_mut(l.slot) {
                        *u = Some(Arc::clone(&l.frame.data));
                    }
                }
                Err(e) => warn!("media: {e}"),
            }
        }
        let layers: Vec<LayerDraw> = list.layers.iter().map(|l| l.draw).collect();
        if let Err(e) = entry.compositor.render_into(gpu, &layers, &entry.view) {
            warn!("media: composite failed: {e}");
        }
    }
}
