//! The Bevy side: the master publishes its show time to its responder; a receiver's servo
//! steers the engine's [`ShowTimeBase`] toward the master's show time every frame, before the
//! engine counts its ticks.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use rockontrol_engine::{ShowClock, ShowTimeBase, TickSource};
use rockontrol_replicate::AppReplicateExt;
use serde::{Deserialize, Serialize};

use crate::codec::ClockKey;
use crate::local::LocalClock;
use crate::servo::{Correction, Servo, ServoConfig};
use crate::udp::{ClientConfig, ClockAnswerer, ClockClient, ClockResponder, ShowTimeShare};
use crate::websocket::{WS_PACKET_PART, WsClockPacket, WsInbox, WsSend};

/// Registers the clock's protocol message (the WebSocket fallback's packet).
pub fn register_replication(
    rules: &mut rockontrol_replicate::ReplicationRules,
) -> Result<(), rockontrol_replicate::DuplicatePart> {
    rules.add_message::<WsClockPacket>(WS_PACKET_PART)?;
    Ok(())
}

/// Between fresh samples the servo still looks this often (drift keeps moving the error).
const RECHECK: Duration = Duration::from_millis(250);
/// Gated samples the model needs before it steers show time.
const MIN_SAMPLES_TO_STEER: usize = 4;
/// Where a receiver pings its master's clock responder, where that is not the master's link
/// address and port (a UDP relay; the tests' impairment proxy): `IP:PORT`.
pub const CLOCK_SERVER_VARIABLE: &str = "ROCKONTROL_CLOCK_SERVER";

/// The responder address in `$ROCKONTROL_CLOCK_SERVER`, if set (a bad one is logged and
/// ignored).
fn clock_server_from_env() -> Option<SocketAddr> {
    let text = std::env::var(CLOCK_SERVER_VARIABLE).ok()?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse() {
        Ok(addr) => {
            info!("{CLOCK_SERVER_VARIABLE}: clock pings go to udp {addr}");
            Some(addr)
        }
        Err(e) => {
            error!(
                "{CLOCK_SERVER_VARIABLE}={text:?} is not IP:PORT ({e}); pinging the master's own address"
            );
            None
        }
    }
}

/// Clock sync for both roles: [`ClockSync`] (a receiver follows with
/// [`ClockSync::follow`]) and [`ClockResponderSlot`] (a master answers with
/// [`ClockResponderSlot::start`]). Either does nothing until started.
#[derive(Debug, Default)]
pub struct ClockSyncPlugin {
    /// How show time is steered.
    pub servo: ServoConfig,
    /// When and how the client pings.
    pub client: ClientConfig,
}

/// The clock plugin's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClockSystems {
    /// Steer the receiver's show time (in `PreUpdate`, before the engine counts ticks).
    Steer,
    /// Publish the master's show time to its responder (in `PostUpdate`).
    Publish,
}

impl Plugin for ClockSyncPlugin {
    fn build(&self, app: &mut App) {
        let clock = match LocalClock::from_env() {
            Ok(c) => c,
            Err(e) => {
                error!("{e}; using the clock as it is");
                LocalClock::system()
            }
        };
        app.insert_resource(ClockSync {
            clock,
            client: None,
            servo: Servo::new(self.servo),
            client_config: self.client,
            seen_version: 0,
            last_check: None,
            server: clock_server_from_env(),
            ws_send: None,
            ws_inbox: WsInbox::default(),
        })
        .insert_resource(ClockResponderSlot {
            clock,
            share: ShowTimeShare::default(),
            responder: None,
            answerer: None,
        })
        .add_replication(register_replication)
        .init_resource::<ClockStatus>()
        .add_systems(PreUpdate, steer_show_time.in_set(ClockSystems::Steer))
        .add_systems(PostUpdate, publish_show_time.in_set(ClockSystems::Publish));
    }
}

/// What a receiver reports of its clock (heartbeat, `GET /api/nodes/{id}/status`, UI).
#[derive(
    Resource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ClockStatus {
    /// The master responder followed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// True once show time follows the clock model (the 1 Hz tick sync is then ignored).
    pub locked: bool,
    /// This node's clock minus the master's, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ns: Option<i64>,
    /// How much faster this node's clock runs, in ppm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_ppm: Option<f64>,
    /// One standard deviation of the offset, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty_ns: Option<f64>,
    /// The smallest round trip in the filter's window, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rtt_ns: Option<i64>,
    /// The frequency correction of this node's show time (how much faster it runs than this
    /// node's clock, to keep the master's rate), in ppm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_ppm: Option<f64>,
    /// The path of the latest exchange: `udp`, or `websocket` (the fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Show time error (master − here) at the latest servo check, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_error_ns: Option<i64>,
    /// Samples taken.
    pub samples: u64,
    /// Steps of show time made by the servo.
    pub steps: u64,
    /// Whether receive times are kernel stamps.
    pub kernel_timestamps: bool,
    /// Tests only: the injected clock error now (the truth `offset_ns` should match when the
    /// master has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_offset_ns: Option<i64>,
}

/// A receiver's clock sync: the client thread and the servo.
#[derive(Resource, Debug)]
pub struct ClockSync {
    clock: LocalClock,
    client: Option<ClockClient>,
    servo: Servo,
    client_config: ClientConfig,
    seen_version: u64,
    last_check: Option<Instant>,
    /// [`CLOCK_SERVER_VARIABLE`], where set.
    server: Option<SocketAddr>,
    /// The WebSocket fallback's way out, once the link's owner gave one.
    ws_send: Option<WsSend>,
    /// And its way in.
    ws_inbox: WsInbox,
}

impl ClockSync {
    /// Follows the master whose responder is at `master` (or at `$ROCKONTROL_CLOCK_SERVER`),
    /// signing with control key `key`. Already following that responder: nothing changes.
    pub fn follow(&mut self, master: SocketAddr, key: &str) -> io::Result<()> {
        let master = self.server.unwrap_or(master);
        if self.client.as_ref().is_some_and(|c| c.master() == master) {
            return Ok(());
        }
        self.client = None;
        self.ws_inbox.set(None);
        self.servo.reset();
        self.seen_version = 0;
        self.client = Some(ClockClient::start_with(
            master,
            ClockKey::derive(key),
            self.clock,
            self.client_config,
            self.ws_send.clone(),
        )?);
        self.ws_inbox
            .set(self.client.as_ref().map(ClockClient::ws_sender));
        Ok(())
    }

    /// The WebSocket fallback: `send` queues a ping on the control link (used by clients
    /// started after this); the link hands the master's packets to the returned inbox.
    pub fn set_websocket_path(&mut self, send: WsSend) -> WsInbox {
        self.ws_send = Some(send);
        self.ws_inbox.clone()
    }

    /// Stops following (show time runs free from here).
    pub fn stop(&mut self) {
        if self.client.take().is_some() {
            info!("clock sync stopped; show time runs free");
        }
        self.servo.reset();
    }

    /// This node's clock (with any injected error).
    pub fn local_clock(&self) -> LocalClock {
        self.clock
    }
}

/// A master's clock responder (none until started) and the show time it hands out.
#[derive(Resource, Debug)]
pub struct ClockResponderSlot {
    clock: LocalClock,
    share: ShowTimeShare,
    responder: Option<ClockResponder>,
    answerer: Option<Arc<ClockAnswerer>>,
}

impl ClockResponderSlot {
    /// Answers clock pings on `bind` signed with one of the control keys `keys`. The
    /// answerer for the WebSocket fallback ([`ClockResponderSlot::answerer`]) exists even
    /// where the UDP port cannot be bound.
    pub fn start(&mut self, bind: SocketAddr, keys: &[String]) -> io::Result<SocketAddr> {
        let keys = keys.iter().map(|k| ClockKey::derive(k)).collect();
        let answerer = Arc::new(ClockAnswerer::new(keys, self.clock, self.share.clone()));
        self.answerer = Some(Arc::clone(&answerer));
        let responder = ClockResponder::start_with(bind, answerer)?;
        let addr = responder.local_addr();
        self.responder = Some(responder);
        Ok(addr)
    }

    /// What answers pings arriving over the control WebSocket, once started.
    pub fn answerer(&self) -> Option<Arc<ClockAnswerer>> {
        self.answerer.clone()
    }

    /// The responder's address, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.responder.as_ref().map(ClockResponder::local_addr)
    }

    /// The show time handed out (for a responder started elsewhere).
    pub fn share(&self) -> ShowTimeShare {
        self.share.clone()
    }
}

fn publish_show_time(base: Res<ShowTimeBase>, slot: Res<ClockResponderSlot>) {
    if slot.answerer.is_some()
        && (base.is_changed() || slot.share.show_ns_at(Instant::now()).is_none())
    {
        slot.share.publish(*base);
    }
}

fn steer_show_time(
    mut sync: ResMut<ClockSync>,
    mut status: ResMut<ClockStatus>,
    mut base: ResMut<ShowTimeBase>,
    mut show_clock: ResMut<ShowClock>,
    source: Res<TickSource>,
) {
    let Some(client) = &sync.client else {
        if status.master.is_some() {
            *status = ClockStatus::default();
        }
        return;
    };
    let state = client.state();
    let now = Instant::now();
    let local = sync.clock.read(now);
    status.master = Some(client.master().to_string());
    status.samples = state.samples;
    status.transport = state.transport.map(|t| t.name().to_string());
    status.kernel_timestamps = state.kernel_timestamps;
    status.injected_offset_ns = sync
        .clock
        .injected()
        .map(|_| sync.clock.error_at_mono(sync.clock.mono_ns(now)));
    if let Some(e) = state.estimate {
        status.offset_ns = Some(e.offset_at(local).round() as i64);
        status.drift_ppm = Some(e.drift_ppm());
        status.uncertainty_ns = Some(e.uncertainty_ns);
        status.min_rtt_ns = Some(e.min_delay_ns);
    }
    // Tests stepping Bevy's fixed clock by hand keep their own time.
    if *source == TickSource::FixedClock {
        return;
    }
    let Some(target) = state.master_show_ns(local).filter(|_| {
        state
            .estimate
            .is_some_and(|e| e.used >= MIN_SAMPLES_TO_STEER)
    }) else {
        return;
    };
    let fresh = state.version != sync.seen_version;
    if !fresh && sync.last_check.is_some_and(|t| now - t < RECHECK) {
        return;
    }
    sync.seen_version = state.version;
    sync.last_check = Some(now);
    // Frequency first: the rate of the master's show time against this node's clock (and
    // so its `Instant`s), from the model's drift; then the phase error left.
    if let Some(later) = state.master_show_ns(sync.clock.read(now + Duration::from_secs(1))) {
        let rate_ppb = later as f64 - target as f64 - 1e9;
        let f = sync.servo.frequency(rate_ppb);
        base.set_frequency(now, f);
        status.frequency_ppm = Some(f64::from(f) / 1e3);
    }
    let current = base.show_ns_at(now);
    status.show_error_ns = Some((i128::from(target) - i128::from(current)) as i64);
    match sync.servo.correct(current, target) {
        Correction::Hold => {}
        Correction::Slew { target_ns, max_ppm } => {
            base.slew(now, target_ns, max_ppm);
        }
        Correction::Step { target_ns, reason } => {
            base.step_to(now, target_ns, &reason);
            // The tick due now is the next one computed (none skipped twice, none waited for).
            show_clock.next_tick = base.tick_at(now);
            status.steps += 1;
        }
    }
    status.locked = sync.servo.acquired();
}
