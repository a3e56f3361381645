//! RocKontrol media playback: clips on layers, frames chosen by the show clock, composited
//! onto LED-wall outputs.
//!
//! The frame a layer shows is a function of show time alone —
//! `⌊(t_show − t_start) · speed · fps⌋` in integer nanoseconds with an exact rational fps —
//! so every node shows the same frame for the same refresh and a late joiner joins at the
//! right frame. Decoding runs ahead in GStreamer pipelines that never touch the ECS; a frame
//! not decoded in time is counted (late or missed), never waited for.
//!
//! # Layout
//! - [`timing`]: pure frame maths: [`Playhead`], end modes, speed, cadence warnings,
//!   [`FrameStats`] (shown / late / missed).
//! - [`timeline`]: [`MediaTimeline`], what every layer does at a show time from the show's
//!   layers, the cues that went (play, stop, opacity and transform fades, tracking) and the
//!   media commands.
//! - [`command`]: [`MediaCommand`] (play, pause, stop, seek per layer) and the replicated
//!   [`MediaLog`].
//! - [`player`]: live decode on a node: a decoder per active or pre-rolled layer, frames
//!   picked by the show clock, late/missed counts, armed, [`PlaybackReport`], capture.
//! - [`composite`]: blend and placement maths, and the CPU reference compositor.
//! - [`blockcode`]: frame numbers drawn into pictures and read back; [`testclip`] encodes
//!   clips of them with ffmpeg.
//! - [`decode`]: [`ClipDecoder`], one GStreamer pipeline per clip into a bounded frame ring;
//!   [`DecoderChoice`] is the one seam for hardware decoders and HAP.
//! - [`gpu`] (feature `gpu`): [`OutputCompositor`], persistent textures and a WGSL blend pass.
//! - [`plugin`]: [`MediaPlugin`], the timeline in a live node's ECS (cue GOs from the engine,
//!   commands, the replicated log), [`MediaStatus`], and live decode with a [`MediaNode`].
//! - [`render`] (feature `gpu`): offline render of an output to PNG frames.
//! - [`regions`]: parts of an output placed onto a physical display (pure).
//! - [`output`] (feature `window`): live outputs in windows (fullscreen on a monitor, or
//!   windowed), composited on Bevy's render device into the texture the window shows.

pub mod blockcode;
pub mod command;
pub mod composite;
pub mod decode;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "window")]
pub mod output;
pub mod player;
pub mod plugin;
pub mod regions;
#[cfg(feature = "gpu")]
pub mod render;
pub mod testclip;
pub mod timeline;
pub mod timing;

pub use command::{LogEntry, MEDIA_PART, MediaCommand, MediaLog};
pub use composite::{LayerParams, Rgba, composite_cpu};
pub use decode::{
    ClipDecoder, ClipInfo, DecodeError, DecoderChoice, Frame, Pick, PixelFormat, Yuv, YuvMatrix,
};
#[cfg(feature = "gpu")]
pub use gpu::{GpuContext, GpuError, LayerDraw, OutputCompositor};
pub use player::{
    CaptureSettings, ClipLocator, DisplayTiming, DisplayTimings, LayerFrame, LayerReport,
    MediaClipFiles, OutputFrames, OutputReport, PlaybackFrames, PlaybackReport,
};
pub use plugin::{
    DEFAULT_PREROLL, GpuFrames, LayerStatus, MediaNode, MediaPlugin, MediaReplica, MediaSettings,
    MediaShow, MediaStatus, MediaSystems,
};
pub use timeline::{CueFired, LayerState, MediaTimeline};
pub use timing::{FrameChoice, FrameStats, Playhead, RefreshGrid, cadence_warning};
