//! `rockontrol master`, `rockontrol receiver` and `rockontrol demo` (the nodes issue).
//!
//! Both nodes run headless (`MinimalPlugins` with a 2 ms outer loop, like `rockontrol run`):
//! the engine in `FixedUpdate`, the DMX output thread, and the network plugin of the role.
//! A master outputs the show universes no node is given (a node registering later takes its
//! universes over); a receiver outputs the ones the master assigns it. Ctrl-C (SIGINT) or SIGTERM stops either cleanly.
//!
//! A receiver told to restart (the `restart` node command) stops the same clean way and then
//! re-executes this program with the same arguments: same pid, node id and state directory
//! (so its executed-command log keeps anything from being applied twice).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use rockontrol_dmx::DmxSettings;
use rockontrol_net::auth::{self, KeySource, Keys};
use rockontrol_net::config::{NodeConfig, Role};
use rockontrol_net::discovery::{self, Advert};
use rockontrol_net::events::{NodeEvent, NodeEvents};
use rockontrol_net::media::{MasterMedia, MasterMediaSetup, ReceiverMedia};
use rockontrol_net::receiver::MasterAddress;
use rockontrol_net::receiver::NodeRestart;
use rockontrol_net::{MasterPlugin, ReceiverPlugin};
use rockontrol_show::Show;

/// Options shared by `master` and `receiver`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Node configuration, JSON (the seed's format) or RON.
    #[arg(long)]
    pub config: PathBuf,
    /// Show to load at start (optional: a node without one runs an empty show).
    #[arg(long)]
    pub show: Option<PathBuf>,
    /// Never open a window.
    #[arg(long)]
    pub headless: bool,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write the node's events (linked, snapshot applied, command executed, …) to this file
    /// as JSON lines, appended; `-` for standard output.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// The media library (master) or media cache (receiver); default: `media` in the state
    /// directory.
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// Write the composited picture of this node's media outputs to DIR/<output>/<refresh>.png
    /// (refresh index at the output's rate, CPU reference compositor) with frames.csv.
    #[arg(long, value_name = "DIR")]
    pub media_capture: Option<PathBuf>,
    /// With --media-capture: every Nth refresh only.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub media_capture_every: u64,
    /// Media pre-roll in milliseconds: a media command without `at` takes effect this long
    /// after the master got it, and nodes open and fill decoders this far ahead.
    #[arg(long, value_name = "MS")]
    pub media_preroll_ms: Option<u64>,
    /// Show this node's media outputs fullscreen (whatever the show says), on `--monitor`.
    #[arg(long)]
    pub fullscreen: bool,
    /// The monitor of `--fullscreen`, by index (0: the first).
    #[arg(long, default_value_t = 0, requires = "fullscreen")]
    pub monitor: u32,
    /// Folder of clip files named after the show's clips (`NAME.mp4`, `.mov`, `.mkv`) for the
    /// node's media outputs.
    #[arg(long)]
    pub clips_dir: Option<PathBuf>,
    /// Plaintext REST, WebSocket and media, no TLS (as `insecure: true` in the config): for
    /// a closed lab network or a test; warned about at start.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub artnet: crate::artnet_args::ArtNetArgs,
    #[command(flatten)]
    pub timecode: crate::timecode_args::TimecodeArgs,
}

/// Live media on this node: it plays the outputs the show gives `node`, finding each clip's
/// verified file in `store` by the id the show names, else in `--clips-dir` by name.
fn add_media_node(
    app: &mut App,
    args: &NodeArgs,
    node: &str,
    store: Option<rockontrol_library::Store>,
    config_preroll_ms: Option<u64>,
) {
    let files = rockontrol_media::MediaClipFiles {
        files: Default::default(),
        // Clips not (yet) in the store play from here, as on a node without one.
        dir: args.clips_dir.clone().or_else(|| {
            args.show
                .as_ref()
                .and_then(|s| s.parent())
                .map(|d| d.join("clips"))
        }),
    };
    let locate: rockontrol_media::ClipLocator = Arc::new(move |name: &str, id: Option<&str>| {
        let in_store = || {
            let store = store.as_ref()?;
            let id: rockontrol_library::ClipId = id?.parse().ok()?;
            // Objects are installed only once verified (hash checked, fsynced, renamed).
            store.contains(&id).then(|| store.object_path(&id))
        };
        in_store().or_else(|| files.find(name))
    });
    app.insert_resource(rockontrol_media::MediaNode {
        node: Some(node.to_string()),
        locate,
        decoder: rockontrol_media::DecoderChoice::Software,
        capture: args
            .media_capture
            .clone()
            .map(|dir| rockontrol_media::CaptureSettings {
                dir,
                every: args.media_capture_every.max(1),
            }),
    });
    // The flag wins over the configuration's `media_preroll_ms`.
    if let Some(ms) = args.media_preroll_ms.or(config_preroll_ms) {
        app.insert_resource(rockontrol_media::MediaSettings {
            preroll: Duration::from_millis(ms),
        });
    }
}

#[derive(Resource)]
struct StopWhen {
    flag: Arc<AtomicBool>,
    at: Option<Duration>,
}

fn stop_when_asked(stop: Res<StopWhen>, time: Res<Time<Real>>, mut exit: MessageWriter<AppExit>) {
    if stop.flag.load(Ordering::SeqCst) || stop.at.is_some_and(|d| time.elapsed() >= d) {
        exit.write(AppExit::Success);
    }
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(stop)
}

/// The process's part of a node app: its loop (a window, or headless), logging and stopping.
/// The role's part is [`rockontrol_net::app`]'s.
fn base_app(
    stop: Arc<AtomicBool>,
    duration: Option<f64>,
    window: Option<crate::windowed::NodeWindow>,
) -> App {
    let mut app = match window {
        Some(window) => {
            let mut app = App::new();
            crate::windowed::add_node_window(&mut app, window);
            app
        }
        None => rockontrol_net::app::headless(),
    };
    app.add_plugins(LogPlugin {
        filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ..default()
    })
    .add_plugins(rockontrol_media::MediaPlugin)
    .insert_resource(StopWhen {
        flag: stop,
        at: duration.map(Duration::from_secs_f64),
    })
    .add_systems(Update, stop_when_asked);
    app
}

/// The events stream `--events` names (none without it).
fn open_events(args: &NodeArgs) -> anyhow::Result<NodeEvents> {
    match &args.events {
        Some(path) => Ok(NodeEvents::open(path)?),
        None => Ok(NodeEvents::default()),
    }
}

fn load_optional_show(path: Option<&Path>, fallback_name: &str) -> anyhow::Result<Option<Show>> {
    match path {
        None => Ok(Some(Show::empty(fallback_name))),
        Some(p) => crate::load_or_report(p),
    }
}

/// The node's TLS certificate: the configured files, else the one kept in (or generated
/// into) its state directory, fingerprint printed; `None` with `insecure` (warned about).
pub(crate) fn server_identity(
    insecure: bool,
    state_dir: &Path,
    files: Option<(&Path, &Path)>,
    node_id: &str,
) -> anyhow::Result<Option<rockontrol_tls::ServerIdentity>> {
    if insecure {
        // The node's log says it again (WARN) once logging runs.
        println!("WARNING: insecure: plaintext, no TLS");
        return Ok(None);
    }
    let identity =
        rockontrol_tls::ServerIdentity::load_or_generate(state_dir, files, &[node_id.to_string()])?;
    let origin = match identity.origin {
        rockontrol_tls::identity::Origin::Configured => "configured",
        rockontrol_tls::identity::Origin::Generated => "self-signed, generated into",
        rockontrol_tls::identity::Origin::Kept => "self-signed, kept in",
    };
    println!(
        "TLS certificate ({origin} {}): SHA-256 fingerprint {}",
        identity.cert_path.display(),
        identity.fingerprint
    );
    Ok(Some(identity))
}

fn state_dir(configured: Option<&Path>) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .unwrap_or_else(rockontrol_dmx::cid::state_dir)
}

fn exit_code(exit: AppExit) -> ExitCode {
    if exit.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub fn master(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = match NodeConfig::load(&args.config)? {
        NodeConfig::Master(m) => m,
        NodeConfig::Receiver(_) => bail!(
            "{} is a receiver configuration; start it with `rockontrol receiver`",
            args.config.display()
        ),
    };
    let Some(mut show) = load_optional_show(args.show.as_deref(), "(no show)")? else {
        return Ok(ExitCode::FAILURE);
    };
    let timecode = args.timecode.apply(&mut show)?;
    for c in config.conflicts() {
        eprintln!(
            "warning: universe {} is assigned to {} (conflict)",
            c.universe,
            c.nodes.join(" and ")
        );
    }
    let mut config = config;
    let dir = state_dir(config.state_dir.as_deref());
    // Adoptions are kept beside the key.
    config.state_dir = Some(dir.clone());
    let (key, source) = auth::control_key(config.api_key.as_deref(), &dir)
        .with_context(|| format!("cannot keep the API key in {}", dir.display()))?;
    match &source {
        KeySource::Environment => println!("API key: from $ROCKONTROL_API_KEY"),
        KeySource::Config => println!("API key: from {}", args.config.display()),
        KeySource::StateFile { path, generated } => println!(
            "API key: {} {} (give it to receivers as $ROCKONTROL_API_KEY)",
            if *generated {
                "generated into"
            } else {
                "kept in"
            },
            path.display()
        ),
    }
    config.insecure |= args.insecure;
    let tls = server_identity(
        config.insecure,
        &dir,
        config.tls_cert.as_deref().zip(config.tls_key.as_deref()),
        &config.node_id,
    )?;
    let bind = config.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let listener = std::net::TcpListener::bind(SocketAddr::new(bind, config.listen_port))
        .with_context(|| format!("cannot listen on {bind}:{}", config.listen_port))?;
    let addr = listener.local_addr()?;
    let events = open_events(&args)?;
    println!(
        "master {} listening on {}://{addr} (REST /api, WebSocket /api/ws, OpenAPI /api/openapi.json)",
        config.node_id,
        if tls.is_some() { "https" } else { "http" }
    );
    events.emit(&NodeEvent::Listening {
        node_id: config.node_id.clone(),
        addr: addr.to_string(),
        fingerprint: tls.as_ref().map(|t| t.fingerprint.to_string()),
    });
    let routed = config.routed_universes();
    let local: Vec<u16> = show
        .universes
        .iter()
        .map(|u| u.id)
        .filter(|u| !routed.contains(u))
        .collect();
    let _mdns = if config.broadcast_enabled {
        discovery::advertise(
            &Advert {
                node_id: config.node_id.clone(),
                role: Role::Master,
                port: addr.port(),
                universes: local.clone(),
                capabilities: vec![rockontrol_net::config::Capability::DmxOutput],
                fingerprint: tls.as_ref().map(|t| t.fingerprint),
            },
            None,
        )
        .map_err(|e| eprintln!("warning: {e}; receivers must be given master_ip"))
        .ok()
    } else {
        None
    };
    let stop = stop_flag()?;
    let window = crate::windowed::NodeWindow::wanted(&args, crate::windowed::Role::Master)
        .map(|w| w.with_media(&args, &config.node_id));
    let mut app = base_app(stop, args.duration, window);
    app.insert_resource(events.clone());
    let mut dmx = DmxSettings {
        source_name: rockontrol_dmx::plugin::source_name(&show.name),
        only_universes: Some(local),
        output_priority: config.dmx_output_priority,
        ..DmxSettings::default()
    };
    args.artnet.apply(&mut dmx);
    if let Some(out) = rockontrol_timecode::artnet_out(&timecode) {
        dmx.artnet_timecode = Some(out);
    }
    app.add_plugins(rockontrol_timecode::TimecodePlugin {
        options: rockontrol_timecode::TimecodeOptions::live(),
    });
    let library = args.library.clone().unwrap_or_else(|| dir.join("media"));
    let store = rockontrol_library::Store::open(&library)
        .with_context(|| format!("cannot open the media library at {}", library.display()))?;
    println!(
        "media library {} ({} clips named by the show)",
        library.display(),
        show.clips.len()
    );
    add_media_node(
        &mut app,
        &args,
        &config.node_id,
        Some(store.clone()),
        config.media_preroll_ms,
    );
    app.insert_resource(MasterMediaSetup(Arc::new(MasterMedia {
        serve_mbit: config.media_serve_mbit,
        ..MasterMedia::new(store, &show)
    })));
    let master = MasterPlugin {
        config: config.clone(),
        keys: Keys {
            control: vec![key],
            read_only: config.read_only_keys.clone(),
        },
        listener: std::sync::Mutex::new(Some(listener)),
        tls,
    };
    rockontrol_net::app::master_app(&mut app, master, dmx, Some(&show));
    let exit = app.run();
    println!("master stopped");
    events.emit(&NodeEvent::Stopped {
        node_id: config.node_id.clone(),
    });
    Ok(exit_code(exit))
}

pub fn receiver(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = match NodeConfig::load(&args.config)? {
        NodeConfig::Receiver(r) => r,
        NodeConfig::Master(_) => bail!(
            "{} is a master configuration; start it with `rockontrol master`",
            args.config.display()
        ),
    };
    let loaded = match &args.show {
        Some(p) => match crate::load_or_report(p)? {
            Some(s) => Some(s),
            None => return Ok(ExitCode::FAILURE),
        },
        None => None,
    };
    let known_show = loaded
        .as_ref()
        .map(|s| rockontrol_net::protocol::show_hash(&rockontrol_show::to_ron_string(s)));
    let fixed = config
        .master_ip
        .map(|ip| SocketAddr::new(ip, config.master_port));
    let master = match (config.auto_discover, fixed) {
        (true, fallback) => MasterAddress::Discover(fallback),
        (false, Some(a)) => MasterAddress::Fixed(a),
        (false, None) => bail!("no master_ip and auto_discover is off"),
    };
    let mut config = config;
    config.insecure |= args.insecure;
    let node_state = state_dir(config.state_dir.as_deref());
    if config.insecure {
        println!("WARNING: insecure: plaintext, no TLS");
    } else {
        // A bad pin file stops the node here, naming the file, rather than trusting anew.
        let configured = config
            .master_fingerprint
            .as_deref()
            .map(str::parse::<rockontrol_tls::Fingerprint>)
            .transpose()?;
        rockontrol_tls::PinSlot::load(configured, &node_state)?;
    }
    // The certificate this node serves its clips to peers with.
    let tls = match config.media_serve {
        Some(_) => server_identity(config.insecure, &node_state, None, &config.node_id)?,
        None => None,
    };
    let key = auth::node_key(config.api_key.as_deref());
    if key.is_none() {
        println!(
            "no API key ($ROCKONTROL_API_KEY or api_key): this node waits to be adopted on the master"
        );
    }
    let _mdns = if config.broadcast_enabled {
        discovery::advertise(
            &Advert {
                node_id: config.node_id.clone(),
                role: Role::Receiver,
                port: config.master_port,
                universes: config.local_universes.clone(),
                capabilities: config.capabilities.clone(),
                fingerprint: tls.as_ref().map(|t| t.fingerprint),
            },
            None,
        )
        .map_err(|e| eprintln!("warning: {e}"))
        .ok()
    } else {
        None
    };
    let finding = match &master {
        MasterAddress::Fixed(a) => a.to_string(),
        MasterAddress::Discover(Some(a)) => format!("mDNS, else {a}"),
        MasterAddress::Discover(None) => "mDNS".into(),
    };
    println!(
        "receiver {} starting: universes {:?}, master {finding}",
        config.node_id, config.local_universes,
    );
    let events = open_events(&args)?;
    events.emit(&NodeEvent::Starting {
        node_id: config.node_id.clone(),
        universes: config.local_universes.clone(),
        master: finding,
    });
    let stop = stop_flag()?;
    let window = crate::windowed::NodeWindow::wanted(&args, crate::windowed::Role::Receiver)
        .map(|w| w.with_media(&args, &config.node_id));
    if args.fullscreen && window.is_none() {
        warn!(
            "--fullscreen: this receiver opens no window (headless); its media outputs stay offscreen"
        );
    }
    let mut app = base_app(stop, args.duration, window);
    let restart = NodeRestart::default();
    app.insert_resource(restart.clone())
        .insert_resource(events.clone());
    let node_id = config.node_id.clone();
    let show = loaded.unwrap_or_else(|| Show::empty("(waiting for the master)"));
    let mut dmx = DmxSettings {
        source_name: rockontrol_dmx::plugin::source_name(&format!("RocKontrol {}", config.node_id)),
        only_universes: Some(config.local_universes.clone()),
        output_priority: config.dmx_output_priority,
        ..DmxSettings::default()
    };
    args.artnet.apply(&mut dmx);
    // Timecode cues come from the master as commands; the receiver computes the label and
    // beat for status from its own (synchronised) show clock, and sends the timecode its
    // config's `timecode_out` names from that clock.
    app.add_plugins(rockontrol_timecode::TimecodePlugin {
        options: rockontrol_timecode::TimecodeOptions::receiver(config.timecode_out.clone()),
    });
    let mut media_store = None;
    if config
        .capabilities
        .contains(&rockontrol_net::config::Capability::MediaPlayback)
    {
        let dir = args.library.clone().unwrap_or_else(|| {
            state_dir(config.state_dir.as_deref())
                .join("media")
                .join(&config.node_id)
        });
        let store = rockontrol_library::Store::open(&dir)
            .with_context(|| format!("cannot open the media cache at {}", dir.display()))?;
        let mbit = config
            .media_bandwidth_mbit
            .unwrap_or(rockontrol_library::fetch::DEFAULT_MBIT);
        println!(
            "media cache {} ({} downloads at once, {})",
            dir.display(),
            config
                .media_downloads
                .unwrap_or(rockontrol_library::fetch::DEFAULT_PARALLEL),
            if mbit > 0.0 {
                format!("{mbit} Mbit/s cap")
            } else {
                "no cap".into()
            }
        );
        media_store = Some(store.clone());
        let mut media = ReceiverMedia::new(
            store,
            config
                .media_downloads
                .unwrap_or(rockontrol_library::fetch::DEFAULT_PARALLEL),
            (mbit > 0.0).then_some(mbit),
        );
        if let Some(addr) = config.media_serve {
            let listener = std::net::TcpListener::bind(addr).with_context(|| {
                format!("cannot serve clips to peers on {addr} (media_serve in the config)")
            })?;
            println!(
                "media: serving ready clips to peers on {}",
                listener.local_addr().map_or(addr, |a| a)
            );
            media = media.serve_peers(listener, config.media_serve_mbit);
            if let Some(identity) = &tls {
                media = media.serve_tls(identity.clone());
            }
        }
        app.insert_resource(media);
    }
    if media_store.is_some() || args.media_capture.is_some() || args.clips_dir.is_some() {
        add_media_node(
            &mut app,
            &args,
            &config.node_id,
            media_store,
            config.media_preroll_ms,
        );
    }
    let receiver = ReceiverPlugin {
        state_dir: node_state,
        key,
        master,
        known_show,
        config,
    };
    rockontrol_net::app::receiver_app(&mut app, receiver, dmx, Some(&show));
    let exit = app.run();
    if restart.requested() {
        println!("receiver {node_id} restarting");
        events.emit(&NodeEvent::Restarting { node_id });
        // The advert goes before the new process makes its own.
        drop(_mdns);
        return Err(re_execute());
    }
    println!("receiver stopped");
    events.emit(&NodeEvent::Stopped { node_id });
    Ok(exit_code(exit))
}

/// Replaces this process with a fresh run of the same program and arguments. Returns only
/// if that fails.
fn re_execute() -> anyhow::Error {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let _ = std::io::stdout().flush();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::anyhow!("cannot restart: cannot find this program's path: {e}"),
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(&exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let e = command.args(args).exec();
    anyhow::anyhow!("cannot restart {}: {e}", exe.display())
}

/// The latest first slots of one sACN universe received on a fresh loopback port.
type LatestSlots = Arc<std::sync::Mutex<Option<Vec<u8>>>>;

/// Binds 127.0.0.1:0 and keeps the first 6 slots of `universe` from the sACN data received
/// there, until `listening` goes false. Returns the port.
fn sacn_sink(universe: u16, listening: Arc<AtomicBool>) -> anyhow::Result<(u16, LatestSlots)> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let port = socket.local_addr()?.port();
    let latest: LatestSlots = Arc::default();
    let sink = Arc::clone(&latest);
    std::thread::Builder::new()
        .name(format!("demo-sacn-{universe}"))
        .spawn(move || {
            let mut buf = [0u8; 1500];
            while listening.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if let Ok(rockontrol_wire::sacn::Packet::Data(p)) =
                    rockontrol_wire::sacn::decode(&buf[..n])
                    && p.universe == universe
                    && let Ok(mut l) = sink.lock()
                {
                    *l = Some(p.slots.iter().take(6).copied().collect());
                }
            }
        })?;
    Ok((port, latest))
}

/// `rockontrol api`: one REST call to a master.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// GET, POST, …
    pub method: String,
    /// e.g. `/api/nodes`.
    pub path: String,
    /// A JSON body, e.g. `'{"type": "go", "playback": "main"}'`.
    pub body: Option<String>,
    /// The master's `ip:port`.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub master: SocketAddr,
    /// The SHA-256 fingerprint of the master's certificate (as the master prints it at
    /// start). Without it: the certificate in the master's state directory (`--state-dir`,
    /// else $ROCKONTROL_STATE_DIR), for a call on the master's own machine.
    #[arg(long)]
    pub fingerprint: Option<rockontrol_tls::Fingerprint>,
    /// The master's state directory (its `tls-cert.pem` pins the call).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Plaintext, for a master running with `insecure`.
    #[arg(long, conflicts_with = "fingerprint")]
    pub insecure: bool,
}

pub fn api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let to = rockontrol_net::client::Endpoint::for_tool(
        args.master,
        args.fingerprint,
        &state_dir(args.state_dir.as_deref()),
        args.insecure,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let key = std::env::var("ROCKONTROL_API_KEY").ok();
    let (status, body) = rockontrol_net::client::http_request_blocking(
        &to,
        &args.method.to_uppercase(),
        &args.path,
        key.as_deref(),
        args.body.as_deref(),
    )?;
    println!("{body}");
    if (200..300).contains(&status) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("HTTP {status}");
        Ok(ExitCode::FAILURE)
    }
}

/// The demo show, built in so `rockontrol demo` runs from anywhere.
const DEMO_SHOW: &str = include_str!("../shows/demo.ron");

pub fn demo() -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let dir = std::env::temp_dir().join(format!("rockontrol-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = auth::random_key()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let show = dir.join("demo.ron");
    std::fs::write(&show, DEMO_SHOW)?;
    let master_cfg = dir.join("master.json");
    std::fs::write(
        &master_cfg,
        format!(
            r#"{{"role": "master", "node_id": "demo-master", "listen_port": {port}, "bind": "127.0.0.1",
  "broadcast_enabled": false,
  "managed_nodes": [
    {{"node_id": "demo-node-1", "ip": "127.0.0.1", "universe_map": [1], "role": "dmx_output"}},
    {{"node_id": "demo-node-2", "ip": "127.0.0.1", "universe_map": [2], "role": "dmx_output"}}
  ]}}"#
        ),
    )?;
    // Each receiver sends its universe as unicast sACN to a socket of ours: the status lines
    // show what the receivers really put on the wire.
    let listening = Arc::new(AtomicBool::new(true));
    let mut outputs = Vec::new();
    for universe in [1u16, 2] {
        let (port, latest) = sacn_sink(universe, Arc::clone(&listening))?;
        outputs.push((universe, port, latest));
    }
    let mut configs = Vec::new();
    for (n, universe, sacn_port) in [(1, 1, outputs[0].1), (2, 2, outputs[1].1)] {
        let path = dir.join(format!("node-{n}.json"));
        std::fs::write(
            &path,
            format!(
                r#"{{"role": "receiver", "node_id": "demo-node-{n}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [{universe}], "capabilities": ["dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:{sacn_port}"}}"#
            ),
        )?;
        configs.push(path);
    }
    let spawn = |role: &str, config: &Path, extra: &[&Path]| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg(role)
            .arg("--config")
            .arg(config)
            .arg("--headless")
            .env("ROCKONTROL_API_KEY", &key)
            .env(
                "ROCKONTROL_STATE_DIR",
                dir.join(format!(
                    "state-{role}-{}",
                    config.display().to_string().len()
                )),
            )
            .env("RUST_LOG", "warn");
        for e in extra {
            cmd.arg("--show").arg(e);
        }
        // Each node's events go to a file of its own; the demo reports them.
        let name = config.file_stem().unwrap_or_default().to_string_lossy();
        cmd.arg("--events")
            .arg(dir.join(format!("events-{name}.jsonl")));
        cmd.spawn()
    };
    println!("RocKontrol demo: a master and two receivers on this machine (loopback only).");
    let mut children = vec![spawn("master", &master_cfg, &[&show])?];
    std::thread::sleep(Duration::from_millis(500));
    for c in &configs {
        children.push(spawn("receiver", c, &[])?);
    }
    let stop = stop_flag()?;
    let master: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let master_state = dir.join(format!(
        "state-master-{}",
        master_cfg.display().to_string().len()
    ));
    // Pinned to the certificate the master generated into its state directory.
    let request = |method: &str, path: &str, body: Option<&str>| {
        let to = rockontrol_net::client::Endpoint::for_tool(master, None, &master_state, false)
            .map_err(|e| anyhow::anyhow!(e))?;
        rockontrol_net::client::http_request_blocking(&to, method, path, Some(&key), body)
            .map_err(anyhow::Error::from)
    };
    let script: [(u64, &str, &str); 5] = [
        (3, "demo-master", r#"{"type": "go", "playback": "main"}"#),
        (8, "demo-master", r#"{"type": "go", "playback": "main"}"#),
        (12, "demo-node-2", r#"{"type": "intensity", "level": 0.5}"#),
        (15, "demo-master", r#"{"type": "go", "playback": "chase"}"#),
        (20, "demo-master", r#"{"type": "clear"}"#),
    ];
    println!(
        "master https://{master}/api/nodes (key {key}); receivers send sACN unicast to 127.0.0.1:{} and :{} (shown: the first 6 slots). Ctrl-C stops.",
        outputs[0].1, outputs[1].1
    );
    let start = Instant::now();
    let mut next = 0;
    let mut last_print = 0;
    let mut followed: Vec<EventsFile> = configs
        .iter()
        .map(|c| {
            let name = c.file_stem().unwrap_or_default().to_string_lossy();
            EventsFile::new(
                format!("demo-{name}"),
                dir.join(format!("events-{name}.jsonl")),
            )
        })
        .collect();
    while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(26) {
        let t = start.elapsed().as_secs();
        for f in &mut followed {
            for line in f.new_lines() {
                println!("[{t:>3} s] {line}");
            }
        }
        if let Some((at, node, body)) = script.get(next)
            && t >= *at
        {
            let path = format!("/api/nodes/{node}/command");
            match request("POST", &path, Some(body)) {
                Ok((status, reply)) => println!("[{t:>3} s] POST {path} {body} → {status} {reply}"),
                Err(e) => println!("[{t:>3} s] POST {path}: {e}"),
            }
            next += 1;
        }
        if t >= last_print + 2 {
            last_print = t;
            if let Ok((200, body)) = request("GET", "/api/nodes", None)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            {
                let nodes: Vec<String> = v["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|n| {
                                format!(
                                    "{} {} {:.0} fps seq {}",
                                    n["node_id"].as_str().unwrap_or("?"),
                                    n["state"].as_str().unwrap_or("?"),
                                    n["dmx_fps"].as_f64().unwrap_or(0.0),
                                    n["seq"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let slots: Vec<String> = outputs
                    .iter()
                    .map(|(universe, _, latest)| {
                        let slots = latest.lock().map(|l| l.clone()).unwrap_or_default();
                        match slots {
                            Some(s) => format!("u{universe} {s:?}"),
                            None => format!("u{universe} (nothing yet)"),
                        }
                    })
                    .collect();
                println!(
                    "[{t:>3} s] {} | sACN {}",
                    nodes.join(" | "),
                    slots.join(" ")
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Receivers first, so they do not report the master lost on the way out. SIGTERM: each
    // node stops cleanly (sACN stream-terminated packets go out); 5 s each at most.
    for child in children.iter_mut().rev() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    listening.store(false, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&dir);
    println!("demo finished");
    Ok(ExitCode::SUCCESS)
}

/// A node's events file, read as it grows: what the demo reports of each receiver.
struct EventsFile {
    node: String,
    path: PathBuf,
    read: usize,
}

impl EventsFile {
    fn new(node: String, path: PathBuf) -> Self {
        EventsFile {
            node,
            path,
            read: 0,
        }
    }

    /// The complete lines added since the last call, as human text (events a user needs
    /// not are left out).
    fn new_lines(&mut self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        let Some(end) = text.get(self.read..).and_then(|t| t.rfind('\n')) else {
            return Vec::new();
        };
        let fresh = &text[self.read..self.read + end + 1];
        self.read += end + 1;
        fresh
            .lines()
            .filter_map(|l| serde_json::from_str::<NodeEvent>(l).ok())
            .filter_map(|e| match e {
                NodeEvent::Connected {
                    master_id,
                    universes,
                } => Some(format!(
                    "connected to master {master_id}: universes {universes:?}"
                )),
                NodeEvent::CommandExecuted { id, command, .. } => {
                    Some(format!("executed {id}: {command}"))
                }
                NodeEvent::CommandFailed { id, reason, .. } => {
                    Some(format!("command {id} failed: {reason}"))
                }
                NodeEvent::MasterLost { reason, .. } => Some(format!("master lost: {reason}")),
                _ => None,
            })
            .map(|text| format!("{}: {text}", self.node))
            .collect()
    }
}
