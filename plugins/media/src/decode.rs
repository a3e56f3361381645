//! Clip decoding with GStreamer into a bounded frame ring keyed by frame number.
//!
//! One pipeline per clip (`filesrc ! decodebin ! videoconvert ! RGBA ! appsink`), pulled by a
//! named thread that fills a [`FrameRing`]. The pipeline and its thread never touch the ECS:
//! the compositor asks the ring for the frame the show clock chose ([`ClipDecoder::pick`]),
//! and gets it, an earlier stand-in (late), or nothing (missed); it never waits. The ring
//! tells the thread which frame is wanted, so the thread seeks when the wanted frame is behind
//! the ring (a loop, a seek back) or far ahead of it (a late join, a seek forward).
//!
//! Which decoder runs is decided in one place, [`DecoderChoice`]: software decoders now,
//! hardware (VA-API, NVDEC) and HAP later.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use rockontrol_show::FrameRate;
use tracing::{debug, warn};

use crate::timing::{frame_of_pts, ns_of_frame};

/// Frames a ring holds by default (about half a second at 60 fps).
pub const DEFAULT_RING_FRAMES: usize = 24;
/// How far past the ring's newest frame a wanted frame may be before the decoder seeks
/// instead of decoding its way there.
const SEEK_AHEAD_FRAMES: u64 = 30;

/// Which decoders a pipeline may use: the one seam where hardware decoders and HAP plug in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecoderChoice {
    /// Software decoders only (`avdec_h264`, `avdec_h265`, `vp9dec`, …): runs anywhere.
    #[default]
    Software,
}

impl DecoderChoice {
    /// The pipeline description, with a `filesrc` named `src` and an `appsink` named `sink`
    /// that gives `format`.
    fn pipeline(self, format: PixelFormat) -> String {
        match self {
            DecoderChoice::Software => format!(
                "filesrc name=src ! decodebin force-sw-decoders=true ! videoconvert ! \
                 video/x-raw,format={} ! appsink name=sink sync=false max-buffers=4 drop=false \
                 enable-last-sample=false",
                format.caps_name()
            ),
        }
    }
}

/// Why a clip could not be opened or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("GStreamer could not start: {0}; install GStreamer 1.22 (scripts/setup.sh)")]
    Init(String),
    #[error("clip {path}: file not found")]
    NotFound { path: PathBuf },
    #[error("clip {path}: {message}")]
    Pipeline { path: PathBuf, message: String },
}

/// A decoded frame, rows tightly packed: RGBA8, or NV12 (the Y plane, then the interleaved
/// UV plane at half size, rounded up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub index: u64,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub data: Arc<Vec<u8>>,
}

/// The layout of a [`Frame`]'s data, asked of the pipeline when the clip is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PixelFormat {
    /// RGBA8, converted by GStreamer (`videoconvert`).
    #[default]
    Rgba,
    /// 4:2:0 planes as decoders give them; the GPU converts them with `yuv` (from the caps).
    Nv12 { yuv: Yuv },
}

/// How Y′CbCr turns into RGB: the matrix and the range, from the stream's colorimetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv {
    pub matrix: YuvMatrix,
    /// Full range (0–255) instead of limited (Y 16–235, C 16–240).
    pub full_range: bool,
}

impl Default for Yuv {
    /// BT.709, limited range (HD video unless its caps say otherwise).
    fn default() -> Self {
        Yuv {
            matrix: YuvMatrix::Bt709,
            full_range: false,
        }
    }
}

/// The Y′CbCr matrix of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum YuvMatrix {
    #[default]
    Bt709,
    Bt601,
}

impl PixelFormat {
    /// The caps format name asked of `videoconvert`.
    fn caps_name(self) -> &'static str {
        match self {
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Nv12 { .. } => "NV12",
        }
    }

    /// Bytes of a tightly packed `width`×`height` frame.
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgba => w * h * 4,
            PixelFormat::Nv12 { .. } => w * h + w.div_ceil(2) * 2 * h.div_ceil(2),
        }
    }
}

/// What [`ClipDecoder::pick`] found for a wanted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The wanted frame.
    Exact(Frame),
    /// Not decoded yet: the newest earlier frame stands in.
    Late(Frame),
    /// Nothing at or before the wanted frame is ready.
    Missed,
}

impl Pick {
    /// The frame to show, if any.
    pub fn frame(&self) -> Option<&Frame> {
        match self {
            Pick::Exact(f) | Pick::Late(f) => Some(f),
            Pick::Missed => None,
        }
    }
}

/// What is known about a clip once its pipeline has pre-rolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    pub fps: FrameRate,
    /// Frames in the clip, from the container's duration (`None` if it does not say).
    pub frames: Option<u64>,
    /// The layout of its frames.
    pub format: PixelFormat,
}

/// The frames between decoder thread and compositor, and the wishes between them.
#[derive(Debug, Default)]
struct RingState {
    frames: VecDeque<Frame>,
    capacity: usize,
    /// The frame the compositor last asked for.
    want: u64,
    /// A seek the decoder thread has to do.
    seek: Option<u64>,
    /// The frame the last seek went to (frames come from there on).
    seek_base: u64,
    /// Bumped on every seek: samples pulled before it are stale.
    generation: u64,
    eos: bool,
    shutdown: bool,
    error: Option<String>,
}

impl RingState {
    /// Drops frames that can no longer be shown: all but the newest one at or before `want`.
    fn trim(&mut self) {
        while self.frames.len() >= 2 && self.frames[1].index <= self.want {
            self.frames.pop_front();
        }
    }

    fn request_seek(&mut self, frame: u64) {
        debug!(frame, "decoder: seek");
        self.seek = Some(frame);
        self.seek_base = frame;
        self.generation += 1;
        self.frames.clear();
        self.eos = false;
    }
}

#[derive(Debug, Default)]
struct FrameRing {
    state: Mutex<RingState>,
    changed: Condvar,
}

impl FrameRing {
    fn lock(&self) -> MutexGuard<'_, RingState> {
        // A panicking decoder thread must not take the show down: keep using the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One clip's pipeline and decoder thread.
#[derive(Debug)]
pub struct ClipDecoder {
    path: PathBuf,
    info: ClipInfo,
    ring: Arc<FrameRing>,
    pipeline: gst::Pipeline,
    thread: Option<JoinHandle<()>>,
    decoder_name: String,
}

fn init() -> Result<(), DecodeError> {
    gst::init().map_err(|e| DecodeError::Init(e.to_string()))
}

impl ClipDecoder {
    /// Opens `path`, pre-rolls it at frame `first` ("armed" once [`ClipDecoder::is_armed`])
    /// and starts decoding into RGBA frames. Blocks for the pre-roll only (at most `timeout`).
    pub fn open(
        path: &Path,
        choice: DecoderChoice,
        first: u64,
        timeout: Duration,
    ) -> Result<Self, DecodeError> {
        Self::open_as(path, choice, PixelFormat::Rgba, first, timeout)
    }

    /// [`ClipDecoder::open`] giving frames in `format` (NV12 for the GPU to convert: a third
    /// of RGBA's bytes to copy and upload, and no RGB conversion on the CPU). The `yuv` of an
    /// NV12 request is replaced by the stream's colorimetry.
    pub fn open_as(
        path: &Path,
        choice: DecoderChoice,
        format: PixelFormat,
        first: u64,
        timeout: Duration,
    ) -> Result<Self, DecodeError> {
        init()?;
        if !path.is_file() {
            return Err(DecodeError::NotFound {
                path: path.to_owned(),
            });
        }
        let fail = |message: String| DecodeError::Pipeline {
            path: path.to_owned(),
            message,
        };
        let pipeline = gst::parse::launch(&choice.pipeline(format))
            .map_err(|e| fail(format!("cannot build the pipeline: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("the description did not give a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .ok_or_else(|| fail("no filesrc".into()))?;
        src.set_property("location", path.to_string_lossy().as_ref());
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| fail("no appsink".into()))?;

        pipeline.set_state(gst::State::Paused).map_err(|_| {
            fail(bus_error(&pipeline).unwrap_or_else(|| "cannot start decoding".into()))
        })?;
        let preroll = sink
            .try_pull_preroll(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
            .ok_or_else(|| {
                fail(bus_error(&pipeline).unwrap_or_else(|| {
                    format!("no frame within {timeout:?} (not a video file, or no decoder for it: is gstreamer1.0-libav installed?)")
                }))
            })?;
        let caps = preroll
            .caps()
            .ok_or_else(|| fail("a frame without caps".into()))?;
        let video =
            gst_video::VideoInfo::from_caps(caps).map_err(|e| fail(format!("caps: {e}")))?;
        let fps = FrameRate::new(
            video.fps().numer().max(0) as u32,
            video.fps().denom().max(0) as u32,
        )
        .ok_or_else(|| {
            fail(format!(
                "no frame rate in the stream ({}); variable-rate clips are not supported",
                video.fps()
            ))
        })?;
        let frames = pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| frame_of_pts(d.nseconds(), fps))
            .filter(|n| *n > 0);
        let info = ClipInfo {
            width: video.width(),
            height: video.height(),
            fps,
            frames,
            format: match format {
                PixelFormat::Rgba => PixelFormat::Rgba,
                PixelFormat::Nv12 { .. } => PixelFormat::Nv12 {
                    yuv: yuv_of(&video),
                },
            },
        };
        let decoder_name = decoder_element(&pipeline).unwrap_or_else(|| "unknown".into());
        debug!(path = %path.display(), ?info, decoder = %decoder_name, "clip opened");

        let ring = Arc::new(FrameRing::default());
        {
            let mut s = ring.lock();
            s.capacity = DEFAULT_RING_FRAMES;
            s.want = first;
            if first > 0 {
                s.request_seek(first);
            }
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| fail(bus_error(&pipeline).unwrap_or_else(|| "cannot play".into())))?;
        let thread = {
            let ring = ring.clone();
            let pipeline = pipeline.clone();
            let name = format!(
                "decode {}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            );
            std::thread::Builder::new()
                .name(name)
                .spawn(move || decode_loop(&pipeline, &sink, &ring, info))
                .map_err(|e| fail(format!("cannot start the decoder thread: {e}")))?
        };
        Ok(ClipDecoder {
            path: path.to_owned(),
            info,
            ring,
            pipeline,
            thread: Some(thread),
            decoder_name,
        })
    }

    pub fn info(&self) -> ClipInfo {
        self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoder element GStreamer chose (`avdec_h264`, …), for status.
    pub fn decoder_name(&self) -> &str {
        &self.decoder_name
    }

    /// The decoder's error, if it failed (the layer then shows nothing; the show goes on).
    pub fn error(&self) -> Option<String> {
        self.ring.lock().error.clone()
    }

    /// Whether the frame last asked for is in the ring (pre-rolled and ready to show).
    pub fn is_armed(&self) -> bool {
        let s = self.ring.lock();
        s.frames.iter().any(|f| f.index == s.want)
    }

    /// The frame for a refresh that shows content frame `want`. Never waits for the decoder.
    pub fn pick(&self, want: u64) -> Pick {
        let mut s = self.ring.lock();
        let pick = self.pick_locked(&mut s, want);
        self.ring.changed.notify_all();
        pick
    }

    fn pick_locked(&self, s: &mut RingState, want: u64) -> Pick {
        s.want = want;
        s.trim();
        let front = s.frames.front().map(|f| f.index);
        let back = s.frames.back().map(|f| f.index);
        let pending = s.seek.is_some();
        // Seek when the wanted frame is behind everything decodable from here, or far ahead.
        let behind = match front {
            Some(f) => want < f,
            None => want < s.seek_base,
        };
        let ahead = match back {
            Some(b) => want > b + SEEK_AHEAD_FRAMES,
            None => want > s.seek_base + SEEK_AHEAD_FRAMES,
        };
        let past_eos =
            s.eos && back.is_none_or(|b| want > b) && self.info.frames.is_none_or(|n| want < n);
        if !pending && (behind || ahead || past_eos) {
            s.request_seek(want);
            return Pick::Missed;
        }
        match s.frames.front() {
            Some(f) if f.index == want => Pick::Exact(f.clone()),
            Some(f) if f.index < want => Pick::Late(f.clone()),
            _ => Pick::Missed,
        }
    }

    /// Offline rendering: waits up to `timeout` for frame `want` exactly (a live output never
    /// calls this). `None` if it did not come (the decoder failed or the clip is shorter).
    pub fn wait_exact(&self, want: u64, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let mut s = self.ring.lock();
        loop {
            if let Pick::Exact(f) = self.pick_locked(&mut s, want) {
                return Some(f);
            }
            self.ring.changed.notify_all();
            if s.error.is_some() {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            s = self
                .ring
                .changed
                .wait_timeout(s, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Drop for ClipDecoder {
    fn drop(&mut self) {
        self.ring.lock().shutdown = true;
        self.ring.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The decoder thread: pulls samples, files them in the ring, seeks when asked.
fn decode_loop(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    ring: &FrameRing,
    info: ClipInfo,
) {
    loop {
        let (generation, seek) = {
            let mut s = ring.lock();
            if s.shutdown {
                return;
            }
            (s.generation, s.seek.take())
        };
        if let Some(frame) = seek {
            let at = gst::ClockTime::from_nseconds(ns_of_frame(frame, info.fps));
            if let Err(e) =
                pipeline.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at)
            {
                warn!(frame, "decoder: seek failed: {e}");
            }
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(20)) else {
            if let Some(message) = bus_error(pipeline) {
                warn!("decoder: {message}");
                ring.lock().error = Some(message);
                ring.changed.notify_all();
                return;
            }
            if sink.is_eos() {
                let mut s = ring.lock();
                if s.generation == generation && s.seek.is_none() {
                    s.eos = true;
                    ring.changed.notify_all();
                    let _ = ring.changed.wait_timeout(s, Duration::from_millis(50));
                }
            }
            continue;
        };
        let Some(frame) = to_frame(&sample, info) else {
            continue;
        };
        let mut s = ring.lock();
        // Wait for room: the compositor frees it by asking for later frames.
        loop {
            if s.shutdown || s.generation != generation {
                break;
            }
            s.trim();
            if s.frames.len() < s.capacity {
                break;
            }
            s = ring
                .changed
                .wait_timeout(s, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if s.generation != generation || s.shutdown {
            continue; // stale: a seek came in meanwhile
        }
        if s.frames.back().is_none_or(|b| b.index < frame.index) {
            s.frames.push_back(frame);
            s.trim();
        }
        ring.changed.notify_all();
    }
}

fn to_frame(sample: &gst::Sample, info: ClipInfo) -> Option<Frame> {
    let buffer = sample.buffer()?;
    let pts = buffer.pts()?;
    let caps = sample.caps()?;
    let video = gst_video::VideoInfo::from_caps(caps).ok()?;
    let map = buffer.map_readable().ok()?;
    let (w, h) = (video.width(), video.height());
    let mut data = Vec::with_capacity(info.format.frame_bytes(w, h));
    // (plane, bytes per row, rows): RGBA is one plane; NV12 is Y, then UV at half height.
    let planes: &[(usize, usize, usize)] = match info.format {
        PixelFormat::Rgba => &[(0, w as usize * 4, h as usize)],
        PixelFormat::Nv12 { .. } => &[
            (0, w as usize, h as usize),
            (1, w.div_ceil(2) as usize * 2, h.div_ceil(2) as usize),
        ],
    };
    for &(plane, row, rows) in planes {
        let stride = *video.stride().get(plane)? as usize;
        let offset = *video.offset().get(plane)?;
        for y in 0..rows {
            let start = offset + y * stride;
            data.extend_from_slice(map.get(start..start + row)?);
        }
    }
    Some(Frame {
        index: frame_of_pts(pts.nseconds(), info.fps),
        width: w,
        height: h,
        format: info.format,
        data: Arc::new(data),
    })
}

/// The Y′CbCr conversion the stream's caps ask for (BT.709 limited range unless they say
/// otherwise).
fn yuv_of(video: &gst_video::VideoInfo) -> Yuv {
    let c = video.colorimetry();
    Yuv {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt601 => YuvMatrix::Bt601,
            _ => YuvMatrix::Bt709,
        },
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
    }
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(format!(
                "{} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            ));
        }
    }
    None
}

/// The name of the decoder element decodebin plugged in.
fn decoder_element(pipeline: &gst::Pipeline) -> Option<String> {
    pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .find_map(|e| {
            // decodebin's own klass says "Decoder" too: the element inside it is wanted.
            if e.is::<gst::Bin>() {
                return None;
            }
            let factory = e.factory()?;
            factory
                .metadata("klass")?
                .contains("Decoder")
                .then(|| factory.name().to_string())
        })
}
