//! The thin I/O shells: MTC and LTC out, ArtTimeCode/MTC/LTC in. Each runs on a named thread
//! and stops when its [`Running`] is dropped. The maths they use lives in the pure modules.
//!
//! - MTC out: quarter frame *q* written at the instant the show time base puts
//!   `ns_of_quarter(q)`; after a jump of show time, a full frame (locate) and the quarter frames
//!   of the new place. To a raw MIDI device, a FIFO or a file (bytes only).
//! - LTC out: GStreamer `appsrc` (S16LE mono 48 kHz) → `audioconvert` → `wavenc` → `filesink`, or
//!   `autoaudiosink` for the sound device. The samples pushed are those of the show time now
//!   (sample *n* is show time `n / 48000`), so the audio is clocked by the show clock; a jump of
//!   show time jumps the timecode in the audio.
//! - Chase in: ArtTimeCode on a UDP port; MTC bytes from a device, FIFO or file; LTC from a WAV
//!   played in real time through GStreamer (`filesrc ! wavparse`, or `autoaudiosrc`).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rockontrol_show::TimecodeLink;
use rockontrol_wire::artnet::{self, ArtPacket};
use rockontrol_wire::timecode::Timecode;
use tracing::{debug, info, warn};

use crate::ltc::{LtcEncoder, LtcReader};
use crate::mtc::{self, MtcDecoder, MtcEvent, QuarterFrames};
use crate::plugin::SharedTimeBase;
use crate::smpte::ShowTimecode;

/// LTC sample rate.
pub const LTC_SAMPLE_RATE: u32 = 48_000;
/// Output threads wake at least this often (to see a stop, a step of show time).
const POLL: Duration = Duration::from_millis(5);

/// A running output or input thread; dropping it stops the thread and waits for it.
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Running")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spawn(
    name: &str,
    body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
) -> std::io::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new().name(name.into()).spawn({
        let stop = Arc::clone(&stop);
        move || body(stop)
    })?;
    Ok(Running {
        stop,
        thread: Some(thread),
    })
}

/// A label received by a chase input.
#[derive(Debug, Clone, Copy)]
pub struct InputLabel {
    /// When it arrived.
    pub at: Instant,
    pub label: Timecode,
    /// Where the source is, relative to the start of the label's frame, at `at` (MTC is read
    /// a quarter frame before the frame it names; LTC at the end of its frame).
    pub offset_ns: i64,
}

/// `artnet`, `mtc` or `ltc`.
#[must_use]
pub fn link_kind(link: &TimecodeLink) -> &'static str {
    match link {
        TimecodeLink::ArtNet => "artnet",
        TimecodeLink::Mtc(_) => "mtc",
        TimecodeLink::Ltc(_) => "ltc",
    }
}

/// `artnet`, `mtc:PATH`, `ltc:PATH`.
#[must_use]
pub fn describe(link: &TimecodeLink) -> String {
    match link {
        TimecodeLink::ArtNet => "artnet".into(),
        TimecodeLink::Mtc(p) => format!("mtc:{p}"),
        TimecodeLink::Ltc(p) => format!("ltc:{p}"),
    }
}

/// Starts an output thread for `link` (`None` for Art-Net: the DMX output sends it).
///
/// # Errors
/// The device or file cannot be opened, or the GStreamer pipeline cannot start.
pub fn start_output(
    link: &TimecodeLink,
    timecode: ShowTimecode,
    share: SharedTimeBase,
) -> Result<Option<Running>, String> {
    match link {
        TimecodeLink::ArtNet => Ok(None),
        TimecodeLink::Mtc(path) => {
            check_parent(path)?;
            info!(
                "MTC out to {path} at {} fps",
                crate::smpte::rate_name(timecode.rate)
            );
            let path = path.clone();
            // Opened on the thread: a FIFO's open waits for its reader.
            spawn("timecode-mtc-out", move |stop| {
                match OpenOptions::new().create(true).append(true).open(&path) {
                    Ok(file) => mtc_out(file, timecode, &share, &stop),
                    Err(e) => warn!("MTC out: cannot open {path} for MIDI bytes: {e}"),
                }
            })
            .map(Some)
            .map_err(|e| e.to_string())
        }
        TimecodeLink::Ltc(target) => {
            let pipeline = LtcPipeline::start(target)?;
            info!(
                "LTC out to {target} at {} fps",
                crate::smpte::rate_name(timecode.rate)
            );
            spawn("timecode-ltc-out", move |stop| {
                ltc_out(pipeline, timecode, &share, &stop)
            })
            .map(Some)
            .map_err(|e| e.to_string())
        }
    }
}

/// A file to be written needs its folder.
fn check_parent(path: &str) -> Result<(), String> {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(format!("folder {} does not exist", dir.display()))
        }
        _ => Ok(()),
    }
}

fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(POLL));
    }
}

fn mtc_out(
    mut out: std::fs::File,
    timecode: ShowTimecode,
    share: &SharedTimeBase,
    stop: &AtomicBool,
) {
    let qf = QuarterFrames { timecode };
    let mut next: Option<u64> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(base) = share.get() else {
            std::thread::sleep(POLL);
            continue;
        };
        let now_q = qf.quarter_at_ns(base.show_ns_at(Instant::now()));
        let q = match next {
            // On time (or a few quarters late): carry on in order.
            Some(q) if q <= now_q + 1 && now_q.saturating_sub(q) < 8 => q,
            _ => {
                // Start, or show time jumped: locate, then the next group of eight.
                let label = timecode.label_at_ns(base.show_ns_at(Instant::now()));
                if let Err(e) = out
                    .write_all(&mtc::full_frame(&label))
                    .and_then(|()| out.flush())
                {
                    warn!("MTC out: {e}; stopping");
                    return;
                }
                debug!("MTC full frame {label}");
                now_q.div_ceil(8) * 8
            }
        };
        if !sleep_until(base.instant_of_ns(qf.ns_of_quarter(q)), stop) {
            return;
        }
        // The time base may have stepped while we slept: re-check before sending.
        if let Some(base) = share.get() {
            let now_q = qf.quarter_at_ns(base.show_ns_at(Instant::now()));
            if now_q + 1 < q || now_q >= q + 8 {
                next = None;
                continue;
            }
        }
        if let Err(e) = out.write_all(&qf.message(q)).and_then(|()| out.flush()) {
            warn!("MTC out: {e}; stopping");
            return;
        }
        next = Some(q + 1);
    }
}

/// `appsrc ! audioconvert ! wavenc ! filesink` (or `! autoaudiosink`).
struct LtcPipeline {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

impl LtcPipeline {
    fn start(target: &str) -> Result<Self, String> {
        gst::init().map_err(|e| format!("GStreamer: {e}"))?;
        let sink = if target == "autoaudiosink" {
            "autoaudiosink".to_string()
        } else {
            check_parent(target)?;
            format!(
                "wavenc ! filesink sync=false location=\"{}\"",
                target.replace('"', "\\\"")
            )
        };
        let description = format!(
            "appsrc name=ltc format=time is-live=true caps=\"audio/x-raw,format=S16LE,layout=interleaved,channels=1,rate={LTC_SAMPLE_RATE}\" ! audioconvert ! {sink}"
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("LTC pipeline {description:?}: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "LTC pipeline is not a pipeline".to_string())?;
        let src = pipeline
            .by_name("ltc")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("LTC pipeline has no appsrc")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("LTC pipeline does not start: {e}"))?;
        Ok(LtcPipeline { pipeline, src })
    }

    fn push(&self, samples: &[i16], pts_ns: u64) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts_ns));
            b.set_duration(gst::ClockTime::from_nseconds(
                samples.len() as u64 * 1_000_000_000 / u64::from(LTC_SAMPLE_RATE),
            ));
        }
        self.src
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    /// Ends the stream and waits (up to 5 s) until the file is finished.
    fn finish(self) {
        let _ = self.src.end_of_stream();
        if let Some(bus) = self.pipeline.bus() {
            let _ = bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn ltc_out(
    pipeline: LtcPipeline,
    timecode: ShowTimecode,
    share: &SharedTimeBase,
    stop: &AtomicBool,
) {
    let encoder = LtcEncoder::new(timecode, LTC_SAMPLE_RATE);
    // Show-time sample index of the next sample, and the stream time (samples pushed so far).
    let mut next: Option<u64> = None;
    let mut pushed: u64 = 0;
    let mut buf = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        let Some(base) = share.get() else { continue };
        let now = encoder.sample_at_ns(base.show_ns_at(Instant::now()));
        let from = match next {
            Some(n) if n <= now && now - n < u64::from(LTC_SAMPLE_RATE) => n,
            Some(n) if n > now && n - now < u64::from(LTC_SAMPLE_RATE) / 10 => continue,
            _ => {
                if next.is_some() {
                    debug!("LTC out: show time jumped; the audio follows");
                }
                now
            }
        };
        let count = (now - from) as usize;
        if count == 0 {
            next = Some(from);
            continue;
        }
        buf.resize(count, 0);
        encoder.fill(from, &mut buf);
        let pts = pushed * 1_000_000_000 / u64::from(LTC_SAMPLE_RATE);
        if let Err(e) = pipeline.push(&buf, pts) {
            warn!("LTC out: {e}; stopping");
            break;
        }
        pushed += count as u64;
        next = Some(now);
    }
    pipeline.finish();
}

/// Starts the chase input for `link`; labels arrive on the receiver.
///
/// # Errors
/// The port, device, file or pipeline cannot be opened.
pub fn start_input(
    link: &TimecodeLink,
    timecode: ShowTimecode,
    artnet_port: u16,
) -> Result<(Running, Receiver<InputLabel>), String> {
    let (tx, rx) = sync_channel(256);
    let running = match link {
        TimecodeLink::ArtNet => {
            let socket = artnet_socket(artnet_port)?;
            spawn("timecode-artnet-in", move |stop| {
                artnet_in(&socket, timecode, &tx, &stop)
            })
        }
        TimecodeLink::Mtc(path) => {
            if !Path::new(path).exists() {
                return Err(format!(
                    "{path} does not exist (a raw MIDI device, FIFO or file)"
                ));
            }
            let path = path.clone();
            // Opened on the thread: a FIFO's open waits for its writer.
            spawn("timecode-mtc-in", move |stop| {
                match OpenOptions::new().read(true).open(&path) {
                    Ok(file) => mtc_in(file, timecode, &tx, &stop),
                    Err(e) => warn!("MTC in: cannot open {path}: {e}"),
                }
            })
        }
        TimecodeLink::Ltc(source) => {
            let pipeline = ltc_source(source)?;
            spawn("timecode-ltc-in", move |stop| {
                ltc_in(pipeline, timecode, &tx, &stop)
            })
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((running, rx))
}

/// A UDP socket on `port` that shares the port with the DMX input (broadcast ArtTimeCode
/// reaches both).
fn artnet_socket(port: u16) -> Result<UdpSocket, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| e.to_string())?;
    let _ = socket.set_reuse_address(true);
    let _ = socket.set_reuse_port(true);
    let _ = socket.set_broadcast(true);
    let addr: SocketAddr = ([0, 0, 0, 0], port).into();
    socket
        .bind(&addr.into())
        .map_err(|e| format!("cannot listen for ArtTimeCode on UDP {addr}: {e}"))?;
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    info!(
        "listening for ArtTimeCode on UDP {}",
        socket.local_addr().map_err(|e| e.to_string())?
    );
    Ok(socket)
}

fn artnet_in(
    socket: &UdpSocket,
    timecode: ShowTimecode,
    tx: &SyncSender<InputLabel>,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        match artnet::decode(&buf[..n]) {
            Ok(ArtPacket::TimeCode(tc)) => {
                if tc.timecode.rate != timecode.rate {
                    debug!(
                        "ArtTimeCode from {from} at another rate ({:?}); read at the show's",
                        tc.timecode.rate
                    );
                }
                let label = Timecode {
                    rate: timecode.rate,
                    ..tc.timecode
                };
                if label.validate().is_err()
                    || tx
                        .try_send(InputLabel {
                            at,
                            label,
                            offset_ns: 0,
                        })
                        .is_err()
                {
                    debug!("ArtTimeCode {} from {from} not used", tc.timecode);
                }
            }
            Ok(_) => {}
            Err(e) => debug!("not Art-Net from {from}: {e}"),
        }
    }
}

fn mtc_in(
    mut file: std::fs::File,
    timecode: ShowTimecode,
    tx: &SyncSender<InputLabel>,
    stop: &AtomicBool,
) {
    let mut decoder = MtcDecoder::default();
    let quarter = timecode.rate.ns_of_frame(1) as i64 / 4;
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        match file.read(&mut buf) {
            // End of a file or a FIFO without writer: look again soon (like `tail -f`).
            Ok(0) => std::thread::sleep(POLL),
            Ok(n) => {
                let at = Instant::now();
                for b in &buf[..n] {
                    let event = decoder.push(*b);
                    let (label, offset_ns) = match event {
                        Some(MtcEvent::FullFrame(tc)) => (tc, 0),
                        // The decoder names the frame the next piece 0 starts; we are a quarter before.
                        Some(MtcEvent::Running(tc)) => (tc, -quarter),
                        None => continue,
                    };
                    let label = Timecode {
                        rate: timecode.rate,
                        ..label
                    };
                    if label.validate().is_ok() {
                        let _ = tx.try_send(InputLabel {
                            at,
                            label,
                            offset_ns,
                        });
                    }
                }
            }
            Err(e) => {
                warn!("MTC in: {e}; stopping");
                return;
            }
        }
    }
}

/// `filesrc ! wavparse` (or `autoaudiosrc`) `! audioconvert ! audioresample ! appsink`, F32 mono
/// 48 kHz, the sink synchronised to the clock so a file plays in real time.
fn ltc_source(source: &str) -> Result<(gst::Pipeline, gst_app::AppSink), String> {
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    let input = if source == "autoaudiosrc" {
        "autoaudiosrc".to_string()
    } else {
        if !Path::new(source).is_file() {
            return Err(format!("{source} is not a file"));
        }
        format!(
            "filesrc location=\"{}\" ! wavparse",
            source.replace('"', "\\\"")
        )
    };
    let description = format!(
        "{input} ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate={LTC_SAMPLE_RATE} ! appsink name=ltc sync=true max-buffers=64"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("LTC input {description:?}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "LTC input is not a pipeline".to_string())?;
    let sink = pipeline
        .by_name("ltc")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("LTC input has no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("LTC input does not start: {e}"))?;
    Ok((pipeline, sink))
}

fn ltc_in(
    (pipeline, sink): (gst::Pipeline, gst_app::AppSink),
    timecode: ShowTimecode,
    tx: &SyncSender<InputLabel>,
    stop: &AtomicBool,
) {
    let mut reader = LtcReader::new(timecode.rate, LTC_SAMPLE_RATE);
    // A label is decoded as its frame ends: the source is one frame on.
    let frame = timecode.rate.ns_of_frame(1) as i64;
    while !stop.load(Ordering::SeqCst) {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) else {
            if sink.is_eos() {
                info!("LTC input ended");
                break;
            }
            continue;
        };
        let at = Instant::now();
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        let Ok(map) = buffer.map_readable() else {
            continue;
        };
        let samples: Vec<f32> = map
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for label in reader.push(&samples) {
            let _ = tx.try_send(InputLabel {
                at,
                label,
                offset_ns: frame,
            });
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
}
