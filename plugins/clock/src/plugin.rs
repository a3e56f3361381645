//! The Bevy side: the master publishes its show time to its responder; a receiver's servo
//! steers the engine's [`ShowTimeBase`] toward the master's show time every frame, before the
//! engine counts its ticks.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use rockontrol_engine::{ShowClock, ShowTimeBase, TickSource};
use serde::{Deserialize, Serialize};

use crate::codec::ClockKey;
use crate::local::LocalClock;
use crate::servo::{Correction, Servo, ServoConfig};
use crate::udp::{ClientConfig, ClockClient, ClockResponder, ShowTimeShare};

/// Between fresh samples the servo still looks this often (drift keeps moving the error).
const RECHECK: Duration = Duration::from_millis(250);
/// Gated samples the model needs before it steers show time.
const MIN_SAMPLES_TO_STEER: usize = 4;

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
        })
        .insert_resource(ClockResponderSlot {
            clock,
            share: ShowTimeShare::default(),
            responder: None,
        })
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
}

impl ClockSync {
    /// Follows the master whose responder is at `master`, signing with control key `key`.
    /// Already following that responder: nothing changes.
    pub fn follow(&mut self, master: SocketAddr, key: &str) -> io::Result<()> {
        if self.client.as_ref().is_some_and(|c| c.master() == master) {
            return Ok(());
        }
        self.client = None;
        self.servo.reset();
        self.seen_version = 0;
        self.client = Some(ClockClient::start(
            master,
            ClockKey::derive(key),
            self.clock,
            self.client_config,
        )?);
        Ok(())
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
}

impl ClockResponderSlot {
    /// Answers clock pings on `bind` signed with one of the control keys `keys`.
    pub fn start(&mut self, bind: SocketAddr, keys: &[String]) -> io::Result<SocketAddr> {
        let keys = keys.iter().map(|k| ClockKey::derive(k)).collect();
        let responder = ClockResponder::start(bind, keys, self.clock, self.share.clone())?;
        let addr = responder.local_addr();
        self.responder = Some(responder);
        Ok(addr)
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
    if slot.responder.is_some()
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
