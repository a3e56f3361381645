//! The live stage preview: a 2D top view drawn by Bevy from the engine's output frame.
//!
//! Every fixture with a stage position is a square sprite coloured by the light it emits now
//! (colour mix × intensity, from [`LiveFixtures`], i.e. the frame on the wire); moving heads
//! and scanners get a beam whose direction follows pan and whose length follows tilt.
//! Downstage (the audience) is at the bottom. Click a fixture to select it (Shift adds),
//! drag it to move it; the new position is written to the show on release (one undo step).
//!
//! The stage camera renders into the part of the window the egui panels leave free
//! ([`StageViewport`]); egui draws on a second camera above it.

use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, ScalingMode, Viewport};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::window::PrimaryWindow;
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{EguiGlobalSettings, PrimaryEguiContext};
use rockontrol_show::FixtureKind;

use crate::UiSystems;
use crate::actions::{UiAction, UiActions, UiState};
use crate::live::{FixtureView, LiveFixtures};

/// Side of a fixture's square, in metres.
pub const FIXTURE_SIZE: f32 = 0.7;
/// Longest beam drawn (tilted fully sideways), in metres.
const BEAM_LENGTH: f32 = 2.5;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<StageViewport>()
        .init_resource::<StageDrag>()
        .add_systems(Startup, spawn_cameras)
        .add_systems(
            Update,
            (sync_sprites, drag_fixtures, fit_camera)
                .chain()
                .in_set(UiSystems::Preview),
        );
}

/// The stage camera.
#[derive(Component, Debug)]
pub struct StageCamera;

/// The sprite of fixture `0`.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFixture(pub u32);

#[derive(Component, Debug)]
struct StageBeam;

#[derive(Component, Debug)]
struct StageOutline;

/// The free area of the window (logical pixels) the stage is drawn in; set by the panels.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct StageViewport(pub Rect);

impl Default for StageViewport {
    fn default() -> Self {
        StageViewport(Rect::new(0.0, 0.0, 1280.0, 720.0))
    }
}

/// A fixture being dragged: its id and where it is drawn meanwhile.
#[derive(Resource, Debug, Default)]
struct StageDrag {
    fixture: Option<u32>,
    offset: Vec2,
    position: Vec2,
    moved: bool,
}

fn spawn_cameras(mut commands: Commands, mut egui: ResMut<EguiGlobalSettings>) {
    egui.auto_create_primary_context = false;
    commands.spawn((
        StageCamera,
        Camera2d,
        Projection::Orthographic(OrthographicProjection {
            scaling_mode: ScalingMode::AutoMin {
                min_width: 14.0,
                min_height: 8.0,
            },
            ..OrthographicProjection::default_2d()
        }),
    ));
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
}

/// The stage position of a fixture in world units (metres, y upstage).
pub fn stage_position(fixture: &FixtureView) -> Option<Vec2> {
    fixture.position.map(|(x, y)| Vec2::new(x as f32, y as f32))
}

/// Sprite colour of a fixture: its output, lifted to a dim grey when dark so it stays visible.
pub fn body_color(fixture: &FixtureView) -> Color {
    let [r, g, b] = fixture.output_rgb();
    let floor = 0.14 * (1.0 - r.max(g).max(b));
    Color::srgb(r + floor, g + floor, b + floor)
}

/// Beam of a moving head: unit direction (pan) and length (tilt) in metres.
fn beam(fixture: &FixtureView) -> Option<(Vec2, f32)> {
    if !matches!(fixture.kind, FixtureKind::MovingHead | FixtureKind::Scanner) {
        return None;
    }
    let pan = fixture.live(&rockontrol_show::Attribute::Pan)?;
    let tilt = fixture
        .live(&rockontrol_show::Attribute::Tilt)
        .unwrap_or(0.5);
    let pan_angle = ((pan - 0.5) * fixture.pan_range as f32).to_radians();
    let tilt_angle = ((tilt - 0.5) * fixture.tilt_range as f32).to_radians();
    // Pan centre points downstage (towards the audience, −y).
    let dir = Vec2::new(pan_angle.sin(), -pan_angle.cos()) * tilt_angle.sin().signum();
    Some((dir, BEAM_LENGTH * tilt_angle.sin().abs()))
}

#[expect(
    clippy::type_complexity,
    reason = "the beam query must exclude fixture sprites to borrow Transform twice"
)]
fn sync_sprites(
    mut commands: Commands,
    live: Res<LiveFixtures>,
    state: Res<UiState>,
    drag: Res<StageDrag>,
    mut sprites: Query<(
        Entity,
        &StageFixture,
        &mut Transform,
        &mut Sprite,
        &Children,
    )>,
    mut beams: Query<
        (&mut Transform, &mut Sprite, &mut Visibility),
        (With<StageBeam>, Without<StageFixture>),
    >,
    mut outlines: Query<&mut Visibility, (With<StageOutline>, Without<StageBeam>)>,
) {
    let mut seen = Vec::new();
    for (entity, StageFixture(id), mut transform, mut sprite, children) in &mut sprites {
        let Some(fixture) = live.fixture(*id) else {
            commands.entity(entity).despawn();
            continue;
        };
        let Some(mut pos) = stage_position(fixture) else {
            commands.entity(entity).despawn();
            continue;
        };
        seen.push(*id);
        if drag.fixture == Some(*id) {
            pos = drag.position;
        }
        transform.translation = pos.extend(1.0);
        sprite.color = body_color(fixture);
        for child in children.iter() {
            if let Ok((mut t, mut s, mut v)) = beams.get_mut(child) {
                match beam(fixture) {
                    Some((dir, length)) if length > 0.05 => {
                        let [r, g, b] = fixture.output_rgb();
                        let lit = r.max(g).max(b);
                        *v = if lit > 0.02 {
                            Visibility::Inherited
                        } else {
                            Visibility::Hidden
                        };
                        s.color = Color::srgba(r, g, b, 0.55);
                        s.custom_size = Some(Vec2::new(0.18, length));
                        t.translation = (dir * (length / 2.0)).extend(-0.5);
                        t.rotation = Quat::from_rotation_z(Vec2::Y.angle_to(dir));
                    }
                    _ => *v = Visibility::Hidden,
                }
            }
            if let Ok(mut v) = outlines.get_mut(child) {
                *v = if state.selection.contains(id) {
                    Visibility::Inherited
                } else {
                    Visibility::Hidden
                };
            }
        }
    }
    for fixture in &live.fixtures {
        if seen.contains(&fixture.id) {
            continue;
        }
        let Some(pos) = stage_position(fixture) else {
            continue;
        };
        commands
            .spawn((
                StageFixture(fixture.id),
                Sprite::from_color(body_color(fixture), Vec2::splat(FIXTURE_SIZE)),
                Transform::from_translation(pos.extend(1.0)),
            ))
            .with_children(|parent| {
                parent.spawn((
                    StageOutline,
                    Sprite::from_color(
                        Color::srgb(1.0, 0.85, 0.1),
                        Vec2::splat(FIXTURE_SIZE + 0.16),
                    ),
                    Transform::from_xyz(0.0, 0.0, -0.2),
                    Visibility::Hidden,
                ));
                parent.spawn((
                    StageBeam,
                    Sprite::from_color(Color::NONE, Vec2::new(0.18, 1.0)),
                    Transform::from_xyz(0.0, 0.0, -0.5),
                    Visibility::Hidden,
                ));
            });
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "dragging reads pointer, keys, window, camera, sprites and writes actions"
)]
fn drag_fixtures(
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    window: Single<&Window, With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform), With<StageCamera>>,
    egui_input: Option<Res<EguiWantsInput>>,
    live: Res<LiveFixtures>,
    mut drag: ResMut<StageDrag>,
    mut actions: ResMut<UiActions>,
) {
    let (camera, camera_transform) = *camera;
    let cursor = window
        .cursor_position()
        .and_then(|c| camera.viewport_to_world_2d(camera_transform, c).ok());
    if buttons.just_pressed(MouseButton::Left) {
        let over_egui = egui_input.is_some_and(|e| e.is_pointer_over_area());
        let Some(cursor) = cursor.filter(|_| !over_egui) else {
            return;
        };
        let hit = live.fixtures.iter().find_map(|f| {
            let pos = stage_position(f)?;
            let d = (cursor - pos).abs();
            (d.x <= FIXTURE_SIZE / 2.0 && d.y <= FIXTURE_SIZE / 2.0).then_some((f.id, pos))
        });
        let add = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
        match hit {
            Some((id, pos)) => {
                actions.push(UiAction::Select {
                    fixtures: vec![id],
                    add,
                });
                *drag = StageDrag {
                    fixture: Some(id),
                    offset: pos - cursor,
                    position: pos,
                    moved: false,
                };
            }
            None if !add => actions.push(UiAction::Select {
                fixtures: vec![],
                add: false,
            }),
            None => {}
        }
        return;
    }
    let Some(id) = drag.fixture else {
        return;
    };
    if buttons.pressed(MouseButton::Left) {
        if let Some(cursor) = cursor {
            let position = cursor + drag.offset;
            if position.distance(drag.position) > 0.001 {
                drag.position = position;
                drag.moved = true;
            }
        }
        return;
    }
    // Released: one show edit for the whole drag.
    if drag.moved {
        actions.push(UiAction::MoveFixture {
            fixture: id,
            position: (f64::from(drag.position.x), f64::from(drag.position.y)),
        });
    }
    *drag = StageDrag::default();
}

/// Points the stage camera at the free area of the window and frames every fixture.
fn fit_camera(
    viewport: Res<StageViewport>,
    live: Res<LiveFixtures>,
    drag: Res<StageDrag>,
    window: Single<&Window, With<PrimaryWindow>>,
    camera: Single<(&mut Camera, &mut Transform, &mut Projection), With<StageCamera>>,
) {
    let (mut camera, mut transform, mut projection) = camera.into_inner();
    let scale = window.scale_factor();
    let rect = viewport.0;
    let min = (rect.min * scale).max(Vec2::ZERO).as_uvec2();
    let max = (rect.max * scale)
        .min(Vec2::new(
            window.physical_width() as f32,
            window.physical_height() as f32,
        ))
        .as_uvec2();
    if max.x > min.x + 8 && max.y > min.y + 8 {
        let wanted = Viewport {
            physical_position: min,
            physical_size: max - min,
            ..default()
        };
        if camera
            .viewport
            .as_ref()
            .map(|v| (v.physical_position, v.physical_size))
            != Some((wanted.physical_position, wanted.physical_size))
        {
            camera.viewport = Some(wanted);
        }
    }
    if drag.fixture.is_some() {
        return; // keep the framing still while a fixture moves
    }
    let positions: Vec<Vec2> = live.fixtures.iter().filter_map(stage_position).collect();
    let (lo, hi) = positions.iter().fold(
        (Vec2::splat(f32::MAX), Vec2::splat(f32::MIN)),
        |(lo, hi), p| (lo.min(*p), hi.max(*p)),
    );
    let (centre, size) = if positions.is_empty() {
        (Vec2::ZERO, Vec2::new(12.0, 8.0))
    } else {
        // A margin of 1.5 m leaves room for beams and labels.
        ((lo + hi) / 2.0, (hi - lo) + Vec2::splat(3.0))
    };
    transform.translation = centre.extend(transform.translation.z);
    if let Projection::Orthographic(ortho) = &mut *projection {
        let (w, h) = (size.x.max(4.0), size.y.max(4.0));
        let same = matches!(ortho.scaling_mode,
            ScalingMode::AutoMin { min_width, min_height } if min_width == w && min_height == h);
        if !same {
            ortho.scaling_mode = ScalingMode::AutoMin {
                min_width: w,
                min_height: h,
            };
        }
    }
}
