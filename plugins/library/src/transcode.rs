//! Transcode on ingest to a playout codec: short GOP, no B-frames (H.264, H.265), or HAP.
//!
//! Synchronized multi-layer playback seeks and joins mid-clip: every frame must decode from a
//! near key frame, in order, without reordering. So the recipes fix the GOP
//! ([`PLAYOUT_GOP`] frames, no scene-cut key frames), turn B-frames off, and use 8-bit 4:2:0
//! (HAP: its own intra-only format). The encoder is ffmpeg, run as a child process: its
//! `-progress` output drives the progress bar. The recipe (codec, GOP, the whole argument
//! list and the ffmpeg version) is kept in the clip's sidecar ([`Recipe`]).
//!
//! Pure: [`Playout`], [`Recipe::arguments`], [`parse_progress`]. I/O: [`transcode`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Frames between key frames in a playout encode (0.4 s at 25 fps).
pub const PLAYOUT_GOP: u32 = 10;

/// The playout codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Playout {
    H264,
    H265,
    Hap,
}

impl std::str::FromStr for Playout {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "h264" | "h.264" | "avc" => Ok(Playout::H264),
            "h265" | "h.265" | "hevc" => Ok(Playout::H265),
            "hap" => Ok(Playout::Hap),
            other => Err(format!(
                "transcode codec {other:?}: choose h264, h265 or hap"
            )),
        }
    }
}

impl Playout {
    /// The file extension of its container.
    pub fn extension(self) -> &'static str {
        match self {
            Playout::H264 | Playout::H265 => "mp4",
            Playout::Hap => "mov",
        }
    }

    /// ffmpeg's encoder for it.
    pub fn encoder(self) -> &'static str {
        match self {
            Playout::H264 => "libx264",
            Playout::H265 => "libx265",
            Playout::Hap => "hap",
        }
    }
}

/// How a clip was made from its source: kept in its sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub codec: Playout,
    /// Frames between key frames (1 for HAP, which is intra-only).
    pub gop: u32,
    pub b_frames: u32,
    /// The source file's name and BLAKE3 (hex).
    pub source: String,
    pub source_blake3: String,
    /// `ffmpeg -version`'s first line.
    pub tool: String,
    /// The encoding arguments, between the input and the output.
    pub arguments: Vec<String>,
}

impl Recipe {
    /// The encoding arguments for `codec` (everything between `-i SRC` and the output path).
    pub fn arguments(codec: Playout) -> Vec<String> {
        let gop = PLAYOUT_GOP.to_string();
        let args: Vec<&str> = match codec {
            Playout::H264 => vec![
                "-map",
                "0:v:0",
                "-map",
                "0:a?",
                "-c:v",
                "libx264",
                "-preset",
                "medium",
                "-crf",
                "18",
                "-pix_fmt",
                "yuv420p",
                "-g",
                &gop,
                "-keyint_min",
                &gop,
                "-sc_threshold",
                "0",
                "-bf",
                "0",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                "-movflags",
                "+faststart",
            ],
            Playout::H265 => vec![
                "-map",
                "0:v:0",
                "-map",
                "0:a?",
                "-c:v",
                "libx265",
                "-preset",
                "medium",
                "-crf",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-x265-params",
                "keyint=10:min-keyint=10:scenecut=0:bframes=0:log-level=error",
                "-tag:v",
                "hvc1",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                "-movflags",
                "+faststart",
            ],
            Playout::Hap => vec![
                "-map",
                "0:v:0",
                "-map",
                "0:a?",
                "-c:v",
                "hap",
                "-format",
                "hap",
                "-c:a",
                "pcm_s16le",
            ],
        };
        args.into_iter().map(str::to_string).collect()
    }

    /// The GOP the arguments ask for.
    pub fn gop_of(codec: Playout) -> u32 {
        match codec {
            Playout::Hap => 1,
            Playout::H264 | Playout::H265 => PLAYOUT_GOP,
        }
    }
}

/// Microseconds of output written so far, from one line of ffmpeg's `-progress` output
/// (`out_time_us=1234567`; `N/A` and other keys: `None`).
pub fn parse_progress(line: &str) -> Option<u64> {
    let value = line
        .strip_prefix("out_time_us=")
        .or_else(|| line.strip_prefix("out_time_ms="))?;
    value
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| u64::try_from(v).ok())
}

/// Why a transcode failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error(
        "ffmpeg cannot run ({0}); install it (`./dev setup` does) or add the clip without --transcode"
    )]
    NoFfmpeg(String),
    #[error(
        "ffmpeg has no {encoder} encoder here; install an ffmpeg built with it, or choose another codec"
    )]
    NoEncoder { encoder: &'static str },
    #[error("transcoding {file} to {codec:?} failed: {message}")]
    Failed {
        file: String,
        codec: Playout,
        message: String,
    },
}

fn ffmpeg_version() -> Result<String, TranscodeError> {
    let out = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map_err(|e| TranscodeError::NoFfmpeg(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("ffmpeg")
        .to_string())
}

fn has_encoder(encoder: &str) -> Result<bool, TranscodeError> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .map_err(|e| TranscodeError::NoFfmpeg(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(encoder)))
}

/// Encodes `source` to `codec` into `out`; `progress(done_us)` is called as ffmpeg writes.
/// Returns the recipe (without the source's hash, which the caller knows).
pub fn transcode(
    source: &Path,
    codec: Playout,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Recipe, TranscodeError> {
    let tool = ffmpeg_version()?;
    if !has_encoder(codec.encoder())? {
        return Err(TranscodeError::NoEncoder {
            encoder: codec.encoder(),
        });
    }
    let arguments = Recipe::arguments(codec);
    let failed = |message: String| TranscodeError::Failed {
        file: source.display().to_string(),
        codec,
        message,
    };
    let log = out.with_extension("ffmpeg.log");
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
        .arg(source)
        .args(&arguments)
        .args(["-progress", "pipe:1", "-nostats"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(&log)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .map_err(|e| TranscodeError::NoFfmpeg(e.to_string()))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(us) = parse_progress(&line) {
                progress(us);
            }
        }
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    let errors = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if !status.success() {
        let _ = std::fs::remove_file(out);
        return Err(failed(format!("ffmpeg {status}: {}", errors.trim())));
    }
    Ok(Recipe {
        codec,
        gop: Recipe::gop_of(codec),
        b_frames: 0,
        source: source
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        source_blake3: String::new(),
        tool,
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_fix_the_gop_and_turn_b_frames_off() {
        let h264 = Recipe::arguments(Playout::H264).join(" ");
        assert!(
            h264.contains("-g 10 -keyint_min 10 -sc_threshold 0 -bf 0"),
            "{h264}"
        );
        let h265 = Recipe::arguments(Playout::H265).join(" ");
        assert!(
            h265.contains("keyint=10:min-keyint=10:scenecut=0:bframes=0"),
            "{h265}"
        );
        assert!(
            Recipe::arguments(Playout::Hap)
                .join(" ")
                .contains("-c:v hap")
        );
        assert_eq!(Recipe::gop_of(Playout::Hap), 1);
        assert_eq!("HEVC".parse::<Playout>(), Ok(Playout::H265));
        assert!(
            "vp9"
                .parse::<Playout>()
                .expect_err("vp9 is not a playout codec")
                .contains("h264, h265 or hap")
        );
    }

    #[test]
    fn progress_lines_give_microseconds_written() {
        assert_eq!(parse_progress("out_time_us=1500000"), Some(1_500_000));
        assert_eq!(parse_progress("out_time_us=N/A"), None);
        assert_eq!(parse_progress("out_time_us=-5"), None);
        assert_eq!(parse_progress("frame=12"), None);
    }
}
