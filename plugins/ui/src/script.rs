//! Scripted runs of the real windowed app: UI tests, README screenshots and the frame-time
//! benchmark all go through here, so a screenshot in the README is made exactly the way the
//! test that checks it runs.
//!
//! A [`UiScript`] is a list of [`ScriptStep`]s run one after another from `Update`: push a
//! [`UiAction`] (what a click does), wait for engine ticks or frames, take a [`Screenshot`] of
//! the window, check the world, measure frame times, exit. [`scripted_app`] builds the app
//! (window, egui, engine, [`UiPlugin`](crate::UiPlugin)); [`Xvfb`] gives it a display when
//! the machine has none.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::{PluginGroupBuilder, TerminalCtrlCHandlerPlugin};
use bevy::input::ButtonState;
use bevy::input::mouse::MouseButtonInput;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{CursorMoved, PresentMode, PrimaryWindow, WindowEvent, WindowResolution};
use bevy::winit::{UpdateMode, WinitSettings};
use bevy_egui::EguiPlugin;
use rockontrol_engine::{EnginePlugin, ShowClock, load_show};
use rockontrol_show::Show;

use crate::NodeView;
use crate::actions::{UiAction, UiActions};

/// Window size of scripted runs (and the README screenshots).
pub const SCRIPT_WINDOW: (u32, u32) = (1280, 720);
/// Window size of the receiver view: a Steam Deck's screen.
pub const RECEIVER_WINDOW: (u32, u32) = (1280, 800);

/// A check or report run on the world; an `Err` fails the script.
pub type WorldFn = Box<dyn FnMut(&mut World) -> Result<(), String> + Send + Sync>;

/// Finds a point in the window to click (logical pixels).
pub type PointFn = Box<dyn FnMut(&mut World) -> Result<Vec2, String> + Send + Sync>;

/// One step of a scripted run.
pub enum ScriptStep {
    /// Push an action, as the widget would.
    Act(UiAction),
    /// Wait until the engine has run this many more ticks.
    WaitTicks(u64),
    /// Wait this many rendered frames.
    WaitFrames(u32),
    /// Wait this long (wall clock).
    Wait(Duration),
    /// Wait until the check passes; fail with its last error after the timeout.
    WaitUntil(String, Duration, WorldFn),
    /// Click the left mouse button at the window point (logical pixels) the function finds,
    /// through the window's input messages, as the pointer would: move, press, release.
    Click(String, PointFn),
    /// Capture the window; saved as PNG at the path (if any) and kept in [`LastScreenshot`].
    Screenshot(Option<PathBuf>),
    /// Run a check or a report.
    Run(String, WorldFn),
    /// Record frame times and engine ticks for this long into [`FrameTimes`].
    Measure(Duration),
    /// Quit: success if every step passed.
    Exit,
}

impl std::fmt::Debug for ScriptStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptStep::Act(a) => write!(f, "act {a:?}"),
            ScriptStep::WaitTicks(n) => write!(f, "wait {n} ticks"),
            ScriptStep::WaitFrames(n) => write!(f, "wait {n} frames"),
            ScriptStep::Wait(d) => write!(f, "wait {d:?}"),
            ScriptStep::WaitUntil(name, d, _) => write!(f, "wait up to {d:?} until {name}"),
            ScriptStep::Click(name, _) => write!(f, "click {name}"),
            ScriptStep::Screenshot(p) => write!(f, "screenshot {p:?}"),
            ScriptStep::Run(name, _) => write!(f, "run {name}"),
            ScriptStep::Measure(d) => write!(f, "measure {d:?}"),
            ScriptStep::Exit => write!(f, "exit"),
        }
    }
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::Condition(name, ..) => write!(f, "until {name}"),
            Waiting::Click(p, phase) => write!(f, "click at {p} (phase {phase})"),
            Waiting::Tick(t) => write!(f, "tick {t}"),
            Waiting::Frames(n) => write!(f, "{n} frames"),
            Waiting::Until(t) => write!(f, "until {t:?}"),
            Waiting::Shot(_) => write!(f, "screenshot"),
            Waiting::Measure { .. } => write!(f, "measuring"),
        }
    }
}

/// The script being run.
#[derive(Resource, Debug, Default)]
pub struct UiScript {
    steps: VecDeque<ScriptStep>,
    waiting: Option<Waiting>,
    /// Frames to let the window settle before the first step.
    warmup: u32,
}

enum Waiting {
    Tick(u64),
    Frames(u32),
    Until(Instant),
    Condition(String, Instant, WorldFn),
    /// Press (1), release (2), move the pointer out of the way (3), then done.
    Click(Vec2, u8),
    Shot(Arc<Mutex<Option<Image>>>),
    Measure {
        until: Instant,
        /// `Time<Real>` elapsed at the first frame (its start).
        start: Duration,
        start_tick: u64,
        /// Overstep of the fixed clock then, in ticks.
        start_overstep: f64,
    },
}

impl UiScript {
    pub fn new(steps: impl IntoIterator<Item = ScriptStep>) -> Self {
        UiScript {
            steps: steps.into_iter().collect(),
            waiting: None,
            warmup: 10,
        }
    }
}

/// The latest screenshot a script took.
#[derive(Resource, Debug, Clone)]
pub struct LastScreenshot(pub Image);

/// Frame times measured by [`ScriptStep::Measure`].
#[derive(Resource, Debug, Clone, Default)]
pub struct FrameTimes {
    /// Wall time of every frame, in seconds.
    pub frames: Vec<f64>,
    /// Engine ticks over the measurement, and its wall duration in seconds.
    pub ticks: u64,
    pub seconds: f64,
    /// Change of the fixed clock's overstep over the measurement, in ticks: time the fixed
    /// clock has taken in but not yet ticked for. Both ends are read at frame starts (where
    /// the fixed clock takes in time), so `ticks + overstep_ticks` over `seconds` is the rate
    /// the tick kept, without an error of up to a frame's worth of ticks at each end.
    pub overstep_ticks: f64,
}

impl FrameTimes {
    /// `q`-quantile of the frame times, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.frames.is_empty() {
            return 0.0;
        }
        let mut sorted = self.frames.clone();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i] * 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        if self.frames.is_empty() {
            return 0.0;
        }
        self.frames.iter().sum::<f64>() / self.frames.len() as f64 * 1000.0
    }

    pub fn fps(&self) -> f64 {
        self.frames.len() as f64 / self.seconds.max(1e-9)
    }

    /// Engine ticks per wall second.
    pub fn tick_rate(&self) -> f64 {
        (self.ticks as f64 + self.overstep_ticks) / self.seconds.max(1e-9)
    }

    /// A one-line report.
    pub fn report(&self) -> String {
        format!(
            "{} frames in {:.1} s: {:.1} fps, frame time mean {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; DMX tick {:.2} Hz ({} ticks)",
            self.frames.len(),
            self.seconds,
            self.fps(),
            self.mean_ms(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.95),
            self.quantile_ms(0.99),
            self.quantile_ms(1.0),
            self.tick_rate(),
            self.ticks
        )
    }
}

/// The rendering plugins of the windowed app: Bevy's defaults for the features we build
/// (window, 2D, sprites), without the log plugin and Ctrl-C handler (the binary owns both).
pub fn window_plugins(title: &str, size: (u32, u32)) -> PluginGroupBuilder {
    DefaultPlugins
        .build()
        .disable::<LogPlugin>()
        .disable::<TerminalCtrlCHandlerPlugin>()
        .set(WindowPlugin {
            primary_window: Some(Window {
                title: title.to_string(),
                resolution: WindowResolution::new(size.0, size.1),
                present_mode: PresentMode::AutoVsync,
                ..default()
            }),
            ..default()
        })
}

/// Everything besides the engine that the windowed app adds: window and rendering plugins,
/// egui, the UI, and an update loop that never sleeps on an unfocused window (the DMX tick
/// runs in `FixedUpdate`, which needs frames to happen).
pub fn add_window_and_ui(app: &mut App, title: &str, show_path: Option<PathBuf>) {
    add_window_and_view(app, title, show_path, NodeView::Programmer);
}

/// [`add_window_and_ui`] for a given window: the master's adds the node view, the receiver's
/// is the receiver view alone, 1280×800.
pub fn add_window_and_view(app: &mut App, title: &str, show_path: Option<PathBuf>, view: NodeView) {
    let size = match view {
        NodeView::Receiver => RECEIVER_WINDOW,
        _ => SCRIPT_WINDOW,
    };
    app.add_plugins(window_plugins(title, size))
        .add_plugins(EguiPlugin::default())
        .add_plugins(crate::UiPlugin { show_path, view })
        .insert_resource(WinitSettings {
            focused_mode: UpdateMode::Continuous,
            unfocused_mode: UpdateMode::Continuous,
        });
}

/// A windowed app running `show` with `script`: engine, UI, window 1280×720.
pub fn scripted_app(show: &Show, show_path: Option<PathBuf>, script: UiScript) -> App {
    scripted_view_app(show, show_path, script, NodeView::Programmer)
}

/// [`scripted_app`] for a given window (the caller adds the master's or receiver's network).
pub fn scripted_view_app(
    show: &Show,
    show_path: Option<PathBuf>,
    script: UiScript,
    view: NodeView,
) -> App {
    let mut app = App::new();
    add_window_and_view(&mut app, "RocKontrol", show_path, view);
    app.add_plugins(LogPlugin {
        filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,rockontrol_ui=info".into()),
        ..default()
    })
    .add_plugins(EnginePlugin)
    .insert_resource(script)
    .init_resource::<FrameTimes>()
    .add_systems(Update, run_script.before(crate::UiSystems::Actions));
    // The catch-up every role's assembly allows (the callers add the role's network through
    // `rockontrol_net::app`).
    app.world_mut()
        .resource_mut::<Time<Virtual>>()
        .set_max_delta(rockontrol_net::app::MAX_CATCH_UP);
    load_show(app.world_mut(), show);
    app
}

fn run_script(world: &mut World) {
    loop {
        let Some(mut script) = world.remove_resource::<UiScript>() else {
            return;
        };
        let advanced = step(world, &mut script);
        world.insert_resource(script);
        if !advanced {
            return;
        }
    }
}

/// Runs the script as far as it can this frame; returns true to be called again at once.
fn step(world: &mut World, script: &mut UiScript) -> bool {
    if script.warmup > 0 {
        script.warmup -= 1;
        return false;
    }
    let tick = world.resource::<ShowClock>().next_tick;
    let mut failure = None;
    if let Some(waiting) = &mut script.waiting {
        match waiting {
            Waiting::Tick(t) if tick < *t => return false,
            Waiting::Frames(n) if *n > 0 => {
                *n -= 1;
                return false;
            }
            Waiting::Until(t) if Instant::now() < *t => return false,
            Waiting::Click(_, phase) if *phase == 3 => {
                *phase += 1;
                // Park the pointer in the bottom-left corner, so no tooltip covers the view.
                let window = primary_window(world);
                let height = window
                    .and_then(|w| world.get::<Window>(w))
                    .map_or(0.0, |w| w.height());
                if let Some(window) = window {
                    world.write_message(WindowEvent::CursorMoved(CursorMoved {
                        window,
                        position: Vec2::new(2.0, height - 2.0),
                        delta: None,
                    }));
                }
                return false;
            }
            Waiting::Click(_, phase) if *phase < 3 => {
                let state = if *phase == 1 {
                    ButtonState::Pressed
                } else {
                    ButtonState::Released
                };
                *phase += 1;
                if let Some(window) = primary_window(world) {
                    world.write_message(WindowEvent::MouseButtonInput(MouseButtonInput {
                        button: MouseButton::Left,
                        state,
                        window,
                    }));
                }
                return false;
            }
            Waiting::Condition(name, deadline, f) => {
                if let Err(e) = f(world) {
                    if Instant::now() < *deadline {
                        return false;
                    }
                    failure = Some(format!("{name}: {e}"));
                }
            }
            Waiting::Shot(slot) => {
                let image = slot.lock().ok().and_then(|mut s| s.take());
                match image {
                    Some(image) => {
                        world.insert_resource(LastScreenshot(image));
                    }
                    None => return false,
                }
            }
            Waiting::Measure {
                until,
                start,
                start_tick,
                start_overstep,
            } => {
                let real = world.resource::<Time<Real>>();
                let (delta, now) = (real.delta_secs_f64(), real.elapsed());
                let overstep = overstep_ticks(world);
                let mut times = world.resource_mut::<FrameTimes>();
                times.frames.push(delta);
                if Instant::now() < *until {
                    return false;
                }
                times.ticks = tick - *start_tick;
                times.seconds = (now - *start).as_secs_f64();
                times.overstep_ticks = overstep - *start_overstep;
            }
            _ => {}
        }
        script.waiting = None;
        if let Some(failure) = failure {
            error!("script: waiting until {failure}");
            eprintln!("FAILED: waiting until {failure}");
            world.write_message(AppExit::error());
            script.steps.clear();
            return false;
        }
    }
    let Some(next) = script.steps.pop_front() else {
        return false;
    };
    info!("script: {next:?}");
    match next {
        ScriptStep::Act(action) => world.resource_mut::<UiActions>().push(action),
        ScriptStep::WaitTicks(n) => script.waiting = Some(Waiting::Tick(tick + n)),
        ScriptStep::WaitFrames(n) => script.waiting = Some(Waiting::Frames(n)),
        ScriptStep::Wait(d) => script.waiting = Some(Waiting::Until(Instant::now() + d)),
        ScriptStep::Click(name, mut f) => {
            let found = f(world).and_then(|p| {
                primary_window(world)
                    .map(|w| (w, p))
                    .ok_or("no window".to_string())
            });
            match found {
                Ok((window, position)) => {
                    world.write_message(WindowEvent::CursorMoved(CursorMoved {
                        window,
                        position,
                        delta: None,
                    }));
                    script.waiting = Some(Waiting::Click(position, 1));
                }
                Err(e) => {
                    error!("script: cannot click {name}: {e}");
                    eprintln!("FAILED: click {name}: {e}");
                    world.write_message(AppExit::error());
                    script.steps.clear();
                }
            }
            return false;
        }
        ScriptStep::WaitUntil(name, d, f) => {
            script.waiting = Some(Waiting::Condition(name, Instant::now() + d, f));
            return false;
        }
        ScriptStep::Screenshot(path) => {
            let slot = Arc::new(Mutex::new(None));
            let sink = Arc::clone(&slot);
            world.spawn(Screenshot::primary_window()).observe(
                move |captured: On<ScreenshotCaptured>| {
                    let image = captured.image.clone();
                    if let Some(path) = &path
                        && let Err(e) = save_png(&image, path)
                    {
                        error!("{e}");
                    }
                    if let Ok(mut s) = sink.lock() {
                        *s = Some(image);
                    }
                },
            );
            script.waiting = Some(Waiting::Shot(slot));
            return false;
        }
        ScriptStep::Run(name, mut f) => {
            if let Err(e) = f(world) {
                error!("script step {name:?} failed: {e}");
                eprintln!("FAILED: {name}: {e}");
                world.write_message(AppExit::error());
                script.steps.clear();
                return false;
            }
        }
        ScriptStep::Measure(d) => {
            *world.resource_mut::<FrameTimes>() = FrameTimes::default();
            script.waiting = Some(Waiting::Measure {
                until: Instant::now() + d,
                start: world.resource::<Time<Real>>().elapsed(),
                start_tick: tick,
                start_overstep: overstep_ticks(world),
            });
            return false;
        }
        ScriptStep::Exit => {
            world.write_message(AppExit::Success);
            return false;
        }
    }
    true
}

/// The fixed clock's overstep in ticks.
fn overstep_ticks(world: &World) -> f64 {
    let fixed = world.resource::<Time<Fixed>>();
    fixed.overstep().as_secs_f64() / fixed.timestep().as_secs_f64().max(1e-9)
}

fn primary_window(world: &mut World) -> Option<Entity> {
    world
        .query_filtered::<Entity, With<PrimaryWindow>>()
        .iter(world)
        .next()
}

/// Writes a captured image as an RGB PNG (alpha dropped, as Bevy's `save_to_disk` does).
pub fn save_png(image: &Image, path: &Path) -> Result<(), String> {
    let rgb = rgb_image(image)?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    rgb.save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    info!("screenshot saved to {}", path.display());
    Ok(())
}

/// A captured image as 8-bit RGB.
pub fn rgb_image(image: &Image) -> Result<image::RgbImage, String> {
    image
        .clone()
        .try_into_dynamic()
        .map(|d| d.to_rgb8())
        .map_err(|e| format!("screenshot is not convertible: {e}"))
}

/// A private X server (Xvfb) for machines without a display; killed on drop.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    /// `:N`
    pub display: String,
}

impl Xvfb {
    /// Starts `Xvfb :N -screen 0 WxHx24` on the first free display number from 90.
    pub fn start(size: (u32, u32)) -> Result<Xvfb, String> {
        // One start at a time in this process, so that a stale lock is cleared once and
        // never after another thread's server took the number.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for n in 90..190 {
            let lock = format!("/tmp/.X{n}-lock");
            let socket = format!("/tmp/.X11-unix/X{n}");
            if stale_lock(&lock) {
                // Left by an X server that was killed (SIGKILL leaves its lock and socket):
                // the number is free again, as Xvfb itself would decide.
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&socket);
            }
            if Path::new(&lock).exists() || Path::new(&socket).exists() {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Process::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    &format!("{}x{}x24", size.0, size.1),
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start Xvfb (apt install xvfb): {e}"))?;
            let socket = format!("/tmp/.X11-unix/X{n}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&socket).exists() {
                    return Ok(Xvfb { child, display });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a race for this number: try the next
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err("no free X display number for Xvfb".into())
    }

    /// Environment for a child rendering on this display with Mesa's lavapipe (no GPU).
    pub fn env(&self) -> Vec<(String, String)> {
        let icd = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json".to_string();
        let mut env = vec![("DISPLAY".to_string(), self.display.clone())];
        if Path::new(&icd).exists() {
            env.push(("VK_ICD_FILENAMES".into(), icd.clone()));
            env.push(("VK_DRIVER_FILES".into(), icd));
            env.push(("WGPU_BACKEND".into(), "vulkan".into()));
        }
        env
    }
}

/// Whether the X lock file `path` names a process that is gone (an X server's lock holds its
/// pid as text). A lock that cannot be read is not stale: it may be being written.
fn stale_lock(path: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when a display server is reachable through the environment.
pub fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Runs this same program again with the same arguments on a fresh Xvfb with lavapipe and
/// `extra_env` set, and returns its exit status. For commands that need a window on a
/// machine without one (environment variables must be set before the process starts).
pub fn rerun_on_xvfb(extra_env: &[(&str, &str)]) -> Result<std::process::ExitStatus, String> {
    let xvfb = Xvfb::start(RECEIVER_WINDOW)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Process::new(exe);
    child.args(std::env::args_os().skip(1));
    for (k, v) in xvfb.env() {
        child.env(k, v);
    }
    for (k, v) in extra_env {
        child.env(k, v);
    }
    child
        .status()
        .map_err(|e| format!("cannot run the child on {}: {e}", xvfb.display))
}
