//! What a clip is, from GStreamer's discoverer: container, codec, size, frame rate, frame
//! count, duration, alpha, audio.

use std::path::Path;
use std::sync::Once;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use serde::{Deserialize, Serialize};

/// How long the discoverer may take for one file.
const PROBE_TIMEOUT_S: u64 = 30;

/// A clip's media facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The container's caps name (`video/quicktime`, `video/x-msvideo`, …), if any.
    pub container: Option<String>,
    /// Nanoseconds.
    pub duration_ns: Option<u64>,
    /// The first video stream.
    pub video: Option<VideoInfo>,
    /// Every audio stream.
    #[serde(default)]
    pub audio: Vec<AudioInfo>,
}

/// A video stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Caps name, e.g. `video/x-h264`.
    pub codec: String,
    /// For people, e.g. `H.264 (High Profile)`.
    pub codec_description: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second as a rational (30000/1001 stays exact); 0/1 for a still or unknown.
    pub fps_num: i32,
    pub fps_den: i32,
    /// Duration × frame rate, rounded (the discoverer does not count frames).
    pub frames: Option<u64>,
    /// Whether the stream carries alpha (a raw format with alpha, HAP Alpha, …).
    pub alpha: bool,
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
}

/// A file that could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    #[error("{path}: not a media file GStreamer can read ({reason}); give a video or audio clip")]
    NotMedia { path: String, reason: String },
}

fn init() -> Result<(), ProbeError> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| result = gst::init().map_err(|e| ProbeError::Init(e.to_string())));
    result
}

/// Frames in `duration_ns` at `num/den` frames per second, rounded (integer maths).
pub fn frame_count(duration_ns: u64, num: i32, den: i32) -> Option<u64> {
    if num <= 0 || den <= 0 {
        return None;
    }
    let frames = (u128::from(duration_ns) * num as u128 + den as u128 * 500_000_000)
        / (den as u128 * 1_000_000_000);
    u64::try_from(frames).ok()
}

/// Whether caps describe a stream with alpha.
fn has_alpha(caps_name: &str, raw_format: Option<&str>) -> bool {
    // HAP Alpha and HAP Q Alpha as qtdemux names them; a raw format with an A channel.
    caps_name.ends_with("Hap5")
        || caps_name.ends_with("HapA")
        || caps_name.ends_with("HapM")
        || raw_format.is_some_and(|f| f.contains('A') && f != "GRAY8")
}

/// Probes the file at `path`.
pub fn probe(path: &Path) -> Result<MediaInfo, ProbeError> {
    init()?;
    let not_media = |reason: String| ProbeError::NotMedia {
        path: path.display().to_string(),
        reason,
    };
    let absolute = std::path::absolute(path).map_err(|e| not_media(e.to_string()))?;
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| not_media(e.to_string()))?;
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(PROBE_TIMEOUT_S))
        .map_err(|e| ProbeError::Init(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| not_media(e.to_string()))?;
    let video = info.video_streams().into_iter().find(|v| !v.is_image());
    let audio = info.audio_streams();
    if video.is_none() && audio.is_empty() {
        return Err(not_media("no video or audio stream".into()));
    }
    let duration_ns = info.duration().map(gst::ClockTime::nseconds);
    let container = info
        .stream_info()
        .and_then(|s| s.caps())
        .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
        .filter(|_| {
            info.stream_info()
                .is_some_and(|s| s.is::<pbutils::DiscovererContainerInfo>())
        });
    let video = video.map(|v| {
        let caps = v.caps();
        let structure = caps.as_ref().and_then(|c| c.structure(0));
        let codec = structure.map_or_else(String::new, |s| s.name().to_string());
        let raw_format = structure.and_then(|s| s.get::<String>("format").ok());
        let codec_description = caps
            .as_ref()
            .map(|c| pbutils::pb_utils_get_codec_description(c).to_string())
            .unwrap_or_default();
        let rate = v.framerate();
        let (fps_num, fps_den) = (rate.numer(), rate.denom());
        VideoInfo {
            alpha: has_alpha(&codec, raw_format.as_deref()),
            codec,
            codec_description,
            width: v.width(),
            height: v.height(),
            fps_num,
            fps_den,
            frames: duration_ns.and_then(|d| frame_count(d, fps_num, fps_den)),
        }
    });
    let audio = audio
        .into_iter()
        .map(|a| AudioInfo {
            codec: a
                .caps()
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_default(),
            channels: a.channels(),
            sample_rate: a.sample_rate(),
        })
        .collect();
    Ok(MediaInfo {
        container,
        duration_ns,
        video,
        audio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_is_exact_for_ntsc_rates() {
        // 10 s at 30000/1001 is 299.7 frames → 300.
        assert_eq!(frame_count(10_000_000_000, 30000, 1001), Some(300));
        assert_eq!(frame_count(2_000_000_000, 25, 1), Some(50));
        assert_eq!(frame_count(1_000_000_000, 0, 1), None);
    }

    #[test]
    fn alpha_from_caps() {
        assert!(has_alpha("video/x-raw", Some("RGBA")));
        assert!(has_alpha("video/x-gst-fourcc-Hap5", None));
        assert!(!has_alpha("video/x-gst-fourcc-Hap1", None));
        assert!(!has_alpha("video/x-h264", None));
        assert!(!has_alpha("video/x-raw", Some("I420")));
    }
}
