//! `rockontrol keys add|list|revoke`: the master's keys file (`keys.json` in its state
//! directory: `--state-dir`, else `$ROCKONTROL_STATE_DIR`, else `$XDG_STATE_HOME/rockontrol`, …).
//!
//! A running master reads the file again within a quarter second of a change, so a revoked
//! key stops working at once, on open connections too (see `rockontrol_net::keyring`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use rockontrol_net::keyring::KeysFile;
use rockontrol_net::roles::{Limits, Role};

#[derive(Debug, clap::Args)]
pub struct StateDirArg {
    /// The master's state directory (default: $ROCKONTROL_STATE_DIR, else the user's state
    /// directory).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    fn dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(rockontrol_dmx::cid::state_dir)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Add a key: prints the key (once: only its hash is kept) on standard output, and what
    /// it may do on standard error.
    Add {
        /// viewer, operator, programmer or admin.
        #[arg(long)]
        role: Role,
        /// Who holds it (unique; default: the role and the key's id).
        #[arg(long)]
        name: Option<String>,
        /// Limit it to these universes (repeatable, or comma-separated).
        #[arg(long = "universe", value_delimiter = ',')]
        universes: Vec<u16>,
        /// Limit it to these playbacks (repeatable, or comma-separated).
        #[arg(long = "playback", value_delimiter = ',')]
        playbacks: Vec<String>,
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Every key: id, name, role, limits, created; and the revoked ones. Never a key.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Revoke a key by id or name (a link key by its id, as `list` shows it): a running
    /// master refuses it from now on and closes the connections it opened.
    Revoke {
        key: String,
        #[command(flatten)]
        state: StateDirArg,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Add {
            role,
            name,
            universes,
            playbacks,
            state,
        } => add(&state, role, name, universes, playbacks),
        KeysCommand::List { json, state } => list(&state, json),
        KeysCommand::Revoke { key, state } => revoke(&state, &key),
    }
}

fn add(
    state: &StateDirArg,
    role: Role,
    name: Option<String>,
    universes: Vec<u16>,
    playbacks: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let dir = state.dir();
    let mut file = KeysFile::load(&dir)?;
    let key = rockontrol_net::auth::random_key().context("no random numbers for a key")?;
    let id = rockontrol_net::handshake::key_id(&key);
    let name = name.unwrap_or_else(|| format!("{role}-{id}"));
    let limits = Limits {
        universes,
        playbacks,
    };
    file.add(&key, &name, role, limits.clone(), SystemTime::now())?;
    file.save(&dir)?;
    println!("{key}");
    eprintln!(
        "added key {name:?} (id {id}, role {role}, {limits}) to {}; the key above is shown only now",
        dir.join(rockontrol_net::keyring::FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The link key kept in the state directory (`api-key`), if any: listed with the file's keys.
fn link_key(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("api-key")).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| rockontrol_net::handshake::key_id(key))
}

fn list(state: &StateDirArg, json: bool) -> anyhow::Result<ExitCode> {
    let dir = state.dir();
    let file = KeysFile::load(&dir)?;
    let link = link_key(&dir).filter(|id| !file.is_revoked(id));
    if json {
        let keys: Vec<serde_json::Value> = link
            .iter()
            .map(|id| {
                serde_json::json!({
                    "id": id, "name": "link key (api-key file)", "role": Role::Admin,
                })
            })
            .chain(file.keys.iter().map(|k| {
                serde_json::json!({
                    "id": k.id, "name": k.name, "role": k.role, "universes": k.limits.universes,
                    "playbacks": k.limits.playbacks, "created": k.created,
                })
            }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "keys": keys,
                "revoked": file.revoked,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16}  {:<10}  {:<24}  {:<20}  LIMITS",
        "ID", "ROLE", "NAME", "CREATED"
    );
    if let Some(id) = link {
        println!(
            "{id:<16}  {:<10}  {:<24}  {:<20}  unlimited",
            "admin", "link key (api-key file)", "-"
        );
    }
    for k in &file.keys {
        println!(
            "{:<16}  {:<10}  {:<24}  {:<20}  {}",
            k.id,
            k.role.name(),
            k.name,
            k.created,
            k.limits
        );
    }
    for r in &file.revoked {
        println!(
            "{:<16}  {:<10}  {:<24}  revoked {}",
            r.id, "-", r.name, r.at
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(state: &StateDirArg, which: &str) -> anyhow::Result<ExitCode> {
    let dir = state.dir();
    let mut file = KeysFile::load(&dir)?;
    // Ids are 16 hex digits: such an id not in the file is a link key's (from the config or
    // the environment, which this command cannot see).
    let any_id = which.len() == 16 && which.chars().all(|c| c.is_ascii_hexdigit());
    let revoked = file.revoke(which, any_id, SystemTime::now())?;
    file.save(&dir)?;
    let name = if revoked.name.is_empty() {
        String::new()
    } else {
        format!(" ({:?})", revoked.name)
    };
    println!(
        "revoked key {}{name}: a running master with state directory {} refuses it from now on",
        revoked.id,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
