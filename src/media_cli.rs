//! `rockontrol media …`: the media library on this machine (add, list, show, rm, gc), a
//! standalone media server (`serve`) and a standalone fetcher (`fetch`).
//!
//! The library lives in `<state dir>/media` (the master's state directory:
//! `$ROCKONTROL_STATE_DIR`, else `$XDG_STATE_HOME/rockontrol`, …) unless `--library DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, StatusCode, header};
use indicatif::{ProgressBar, ProgressStyle};
use rockontrol_library::serve::error as http_error;
use rockontrol_library::transcode::Playout;
use rockontrol_library::{
    ClipId, ClipMeta, FetchSettings, Fetcher, MediaServer, Need, NodePlays, Store, manifest_for,
};

#[derive(Debug, clap::Args)]
pub struct LibraryArg {
    /// The library directory (default: `media` in the state directory).
    #[arg(long, global = true)]
    pub library: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum MediaCommand {
    /// Add clips: probe each one, copy it in while hashing, print its id.
    Add {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Transcode each file first to a playout codec: `h264` or `h265` (short GOP, no
        /// B-frames) or `hap` (ffmpeg's HAP encoder); the recipe is kept in the sidecar.
        #[arg(long, value_name = "CODEC")]
        transcode: Option<rockontrol_library::transcode::Playout>,
        #[command(flatten)]
        library: LibraryArg,
    },
    /// Every clip in the library.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        library: LibraryArg,
    },
    /// One clip's facts (JSON).
    Show {
        id: String,
        #[command(flatten)]
        library: LibraryArg,
    },
    /// Remove a clip.
    Rm {
        id: String,
        #[command(flatten)]
        library: LibraryArg,
    },
    /// Remove every clip none of these shows references.
    Gc {
        #[arg(long = "show", required = true)]
        shows: Vec<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        library: LibraryArg,
    },
    /// Serve the library's media endpoints alone (a master serves them on its own port).
    /// Keys: $ROCKONTROL_API_KEY is the control key (required). TLS with the certificate of
    /// the state directory (generated there if absent; its fingerprint is printed).
    Serve {
        /// The show whose clips are sent.
        #[arg(long)]
        show: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// `NODE=clip,clip`: that node plays only these clips (others play every show clip).
        #[arg(long = "plays")]
        plays: Vec<String>,
        #[command(flatten)]
        library: LibraryArg,
        #[command(flatten)]
        tls: ServeTls,
    },
    /// Fetch this node's clips from a master into a store (what a receiver does).
    Fetch {
        /// The master's `host:port`.
        #[arg(long)]
        master: String,
        #[arg(long)]
        node: String,
        /// Where the clips go.
        #[arg(long)]
        dir: PathBuf,
        /// Downloads at once.
        #[arg(long, default_value_t = rockontrol_library::fetch::DEFAULT_PARALLEL)]
        parallel: usize,
        /// Bandwidth cap in Mbit/s (0: none).
        #[arg(long, default_value_t = rockontrol_library::fetch::DEFAULT_MBIT)]
        mbit: f64,
        /// Exit once every clip of the manifest is ready.
        #[arg(long)]
        until_ready: bool,
        #[command(flatten)]
        tls: FetchTls,
    },
}

/// How `media serve` serves: TLS (default) or plaintext.
#[derive(clap::Args, Debug)]
pub struct ServeTls {
    /// Where the server's certificate is kept (`tls-cert.pem`, `tls-key.pem`; default the
    /// state directory, $ROCKONTROL_STATE_DIR).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Plaintext (no TLS): closed lab networks only.
    #[arg(long)]
    insecure: bool,
}

/// How `media fetch` trusts the server: a pinned fingerprint, or plaintext.
#[derive(clap::Args, Debug)]
pub struct FetchTls {
    /// The SHA-256 fingerprint of the server's certificate (as `media serve` or the master
    /// prints it at start). Without it: the certificate in `--state-dir`, for a fetch on the
    /// server's own machine.
    #[arg(long)]
    fingerprint: Option<rockontrol_tls::Fingerprint>,
    /// The server's state directory (its `tls-cert.pem` pins the fetch).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Plaintext, for a server running with `--insecure`.
    #[arg(long, conflicts_with = "fingerprint")]
    insecure: bool,
}

impl FetchTls {
    /// The pin to fetch with (`None`: plaintext).
    fn pin(&self) -> anyhow::Result<Option<rockontrol_tls::PinSlot>> {
        use rockontrol_tls::{Pin, PinSlot, PinSource};
        if let Some(fingerprint) = self.fingerprint {
            return Ok(Some(PinSlot::new(Some(Pin {
                fingerprint,
                source: PinSource::Option,
            }))));
        }
        if self.insecure {
            return Ok(None);
        }
        let dir = self
            .state_dir
            .clone()
            .unwrap_or_else(rockontrol_dmx::cid::state_dir);
        let cert = dir.join(rockontrol_tls::identity::CERT_FILE);
        let fingerprint =
            rockontrol_tls::identity::fingerprint_of_pem_file(&cert).map_err(|e| {
                anyhow::anyhow!(
                    "{e}: give the server's certificate fingerprint (printed at its start) with \
                 --fingerprint, its state directory with --state-dir, or --insecure for a \
                 plaintext server"
                )
            })?;
        Ok(Some(PinSlot::new(Some(Pin {
            fingerprint,
            source: PinSource::MasterState(cert),
        }))))
    }
}

fn library_dir(arg: &LibraryArg) -> PathBuf {
    arg.library
        .clone()
        .unwrap_or_else(|| rockontrol_dmx::cid::state_dir().join("media"))
}

fn open(arg: &LibraryArg) -> anyhow::Result<Store> {
    let dir = library_dir(arg);
    Store::open(&dir).with_context(|| format!("cannot open the media library at {}", dir.display()))
}

fn parse_id(text: &str) -> anyhow::Result<ClipId> {
    Ok(text.parse::<ClipId>()?)
}

fn bytes_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn describe(meta: &ClipMeta) -> String {
    let media = meta.media.as_ref();
    let video = media.and_then(|m| m.video.as_ref()).map_or_else(
        || "no video".to_string(),
        |v| {
            format!(
                "{} {}×{} {}/{} fps{}{}",
                v.codec,
                v.width,
                v.height,
                v.fps_num,
                v.fps_den,
                v.frames
                    .map_or_else(String::new, |f| format!(" {f} frames")),
                if v.alpha { " alpha" } else { "" }
            )
        },
    );
    let audio = media.map_or(0, |m| m.audio.len());
    let seconds = media
        .and_then(|m| m.duration_ns)
        .map_or_else(|| "?".into(), |d| format!("{:.2}", d as f64 / 1e9));
    let recipe = meta.recipe.as_ref().map_or_else(String::new, |r| {
        format!(
            "  (transcoded from {}: {:?}, GOP {}, {} B-frames)",
            r.source, r.codec, r.gop, r.b_frames
        )
    });
    format!(
        "{}  {:>12} B  {seconds:>8} s  {video}, {audio} audio  {}{recipe}",
        meta.id, meta.size, meta.name
    )
}

/// Progress and problems on standard error (`RUST_LOG` overrides the `info` level).
fn init_logging() {
    use bevy::log::tracing_subscriber;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(command: MediaCommand) -> anyhow::Result<ExitCode> {
    init_logging();
    match command {
        MediaCommand::Add {
            files,
            transcode,
            library,
        } => add(&open(&library)?, &files, transcode),
        MediaCommand::List { json, library } => {
            let list = open(&library)?.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("the library is empty; add clips with `rockontrol media add FILE…`");
            } else {
                for meta in &list {
                    println!("{}", describe(meta));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MediaCommand::Show { id, library } => {
            let meta = open(&library)?.meta(&parse_id(&id)?)?;
            println!("{}", serde_json::to_string_pretty(&meta)?);
            Ok(ExitCode::SUCCESS)
        }
        MediaCommand::Rm { id, library } => {
            let meta = open(&library)?.remove(&parse_id(&id)?)?;
            println!("removed {} ({} bytes) {}", meta.id, meta.size, meta.name);
            Ok(ExitCode::SUCCESS)
        }
        MediaCommand::Gc {
            shows,
            dry_run,
            library,
        } => gc(&open(&library)?, &shows, dry_run),
        MediaCommand::Serve {
            show,
            listen,
            plays,
            library,
            tls,
        } => serve(open(&library)?, &show, listen, &plays, &tls),
        MediaCommand::Fetch {
            master,
            node,
            dir,
            parallel,
            mbit,
            until_ready,
            tls,
        } => fetch(master, node, &dir, parallel, mbit, until_ready, &tls),
    }
}

fn add(store: &Store, files: &[PathBuf], transcode: Option<Playout>) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        let added = match transcode {
            None => {
                let len = std::fs::metadata(file).map_or(0, |m| m.len());
                let bar = bytes_bar(len, &file.display().to_string());
                let added = store.ingest(file, &mut |done| bar.set_position(done));
                bar.finish_and_clear();
                added.map_err(anyhow::Error::from)
            }
            Some(codec) => add_transcoded(store, file, codec),
        };
        match added {
            Ok(meta) => println!("{}", describe(&meta)),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files not added", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Transcodes `file` to `codec` in the store's scratch space (a bar over the clip's
/// duration), ingests the result and keeps the recipe, with the source's hash, in its sidecar.
fn add_transcoded(store: &Store, file: &Path, codec: Playout) -> anyhow::Result<ClipMeta> {
    let source = rockontrol_library::probe(file)?;
    let duration_us = source.duration_ns.map_or(0, |ns| ns / 1000);
    let bar = ProgressBar::new(duration_us.max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3} % eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("{} → {codec:?}", file.display()));
    let out = store.scratch_path(&format!("transcode.{}", codec.extension()));
    let recipe = rockontrol_library::transcode::transcode(file, codec, &out, &mut |us| {
        bar.set_position(us.min(duration_us))
    });
    bar.finish_and_clear();
    let mut recipe = recipe?;
    recipe.source_blake3 = rockontrol_library::store::hash_file(file, &mut |_| {})?.to_string();
    let ingested = store.ingest(&out, &mut |_| {});
    let _ = std::fs::remove_file(&out);
    let mut meta = match ingested {
        Err(e) if codec == Playout::Hap => bail!(
            "{}: encoded to HAP, but GStreamer here cannot read HAP ({e}), so no node could \
             play it; install a HAP decoder plug-in or use --transcode h264 or h265",
            file.display()
        ),
        other => other?,
    };
    meta.name = format!(
        "{}.{}",
        file.file_stem()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        codec.extension()
    );
    meta.recipe = Some(recipe);
    store.write_meta(&meta)?;
    Ok(meta)
}

fn referenced(shows: &[PathBuf]) -> anyhow::Result<Option<BTreeSet<ClipId>>> {
    let mut keep = BTreeSet::new();
    for path in shows {
        let Some(show) = crate::load_or_report(path)? else {
            return Ok(None);
        };
        for clip in &show.clips {
            keep.insert(parse_id(&clip.id)?);
        }
    }
    Ok(Some(keep))
}

fn gc(store: &Store, shows: &[PathBuf], dry_run: bool) -> anyhow::Result<ExitCode> {
    let Some(keep) = referenced(shows)? else {
        eprintln!("nothing removed: a show could not be read");
        return Ok(ExitCode::FAILURE);
    };
    let unused: Vec<ClipMeta> = if dry_run {
        store
            .list()?
            .into_iter()
            .filter(|m| !keep.contains(&m.id))
            .collect()
    } else {
        store.gc(&keep)?
    };
    let bytes: u64 = unused.iter().map(|m| m.size).sum();
    for meta in &unused {
        println!(
            "{} {} ({} bytes) {}",
            if dry_run { "would remove" } else { "removed" },
            meta.id,
            meta.size,
            meta.name
        );
    }
    println!(
        "{} clips, {bytes} bytes {}; {} kept",
        unused.len(),
        if dry_run { "unused" } else { "freed" },
        keep.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn control_key() -> anyhow::Result<String> {
    match std::env::var("ROCKONTROL_API_KEY") {
        Ok(k) if !k.is_empty() => Ok(k),
        _ => bail!("set $ROCKONTROL_API_KEY to the key clients must send"),
    }
}

#[allow(
    clippy::result_large_err,
    reason = "the refusal is the axum Response the handler returns as is"
)]
fn serve(
    store: Store,
    show: &Path,
    listen: SocketAddr,
    plays: &[String],
    tls: &ServeTls,
) -> anyhow::Result<ExitCode> {
    let Some(show) = crate::load_or_report(show)? else {
        return Ok(ExitCode::FAILURE);
    };
    let key = control_key()?;
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in plays {
        let Some((node, clips)) = p.split_once('=') else {
            bail!("--plays {p:?}: expected NODE=clip,clip");
        };
        named.insert(
            node.to_string(),
            clips
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    let clips = show.clips.clone();
    let manifest_store = store.clone();
    let manifests = move |node: &str| {
        let plays = named
            .get(node)
            .map_or(NodePlays::AllShowClips, |n| NodePlays::Named(n.clone()));
        Some(manifest_for(node, &clips, &plays, |id| {
            manifest_store.size(id)
        }))
    };
    let authorize = move |headers: &HeaderMap, _need: Need| {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(k) if k.trim() == key => Ok(()),
            Some(_) => Err(http_error(StatusCode::UNAUTHORIZED, "invalid API key")),
            None => Err(http_error(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <key>",
            )),
        }
    };
    let server = Arc::new(MediaServer::new(
        store,
        Box::new(authorize),
        Box::new(manifests),
        Box::new(|| serde_json::json!({ "nodes": {} })),
    ));
    let dir = tls
        .state_dir
        .clone()
        .unwrap_or_else(rockontrol_dmx::cid::state_dir);
    let identity = crate::node_cli::server_identity(tls.insecure, &dir, None, "media-server")?
        .map(|i| i.acceptor());
    let scheme = if identity.is_some() { "https" } else { "http" };
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        println!(
            "media server listening on {scheme}://{}",
            listener.local_addr()?
        );
        // Bounded like a receiver's peer server (connections, slow heads, TLS handshakes).
        let served = rockontrol_net::bounded::serve_bounded(
            listener,
            rockontrol_library::router(server),
            rockontrol_net::master::limits::Policy::new(
                rockontrol_net::media::PEER_SERVE_CONNECTIONS,
            ),
            rockontrol_net::master::server::HEADER_READ_TIMEOUT,
            "media server",
            identity,
        );
        tokio::select! {
            r = served => r.context("media server"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn fetch(
    master: String,
    node: String,
    dir: &Path,
    parallel: usize,
    mbit: f64,
    until_ready: bool,
    tls: &FetchTls,
) -> anyhow::Result<ExitCode> {
    let pin = tls.pin()?;
    let store = Store::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let fetcher = Fetcher::new(
        store,
        FetchSettings {
            master,
            key: std::env::var("ROCKONTROL_API_KEY").ok(),
            node_id: node,
            parallel,
            mbit: (mbit > 0.0).then_some(mbit),
            tls: pin,
        },
    );
    let report = fetcher.report();
    let rt = runtime()?;
    // A tool fails at once when the server cannot be reached or trusted (a receiver's fetcher
    // retries instead): the first manifest says which.
    if let Err(e) = rt.block_on(fetcher.manifest()) {
        bail!("{e}");
    }
    let bar = bytes_bar(0, "media");
    let progress = {
        let bar = bar.clone();
        let report = Arc::clone(&report);
        rt.spawn(async move {
            loop {
                let (done, all) = report.lock().map(|r| r.bytes()).unwrap_or((0, 0));
                bar.set_length(all);
                bar.set_position(done);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let result = rt.block_on(fetcher.run(until_ready, || false));
    progress.abort();
    bar.finish_and_clear();
    result?;
    let report = report.lock().map(|r| r.clone()).unwrap_or_default();
    for clip in &report.clips {
        println!("{} {} {}", clip.id, clip.state.label(), clip.name);
    }
    Ok(ExitCode::SUCCESS)
}
