//! Test clips made at test time: every frame carries its number as a [`blockcode`], encoded
//! by ffmpeg (a real encoder, so decode is tested on real streams).
//!
//! Frames are drawn here and piped to `ffmpeg` as raw RGBA; the background is a moving
//! gradient so the encoder has real work and P-frames differ.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rockontrol_show::FrameRate;

use crate::blockcode;

/// The codec of a test clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 (libx264), a key frame every 10 frames, no B-frames.
    H264,
    /// H.265 (libx265), same GOP.
    H265,
}

/// Why a test clip could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestClipError {
    #[error("cannot run ffmpeg ({0}); install it (scripts/setup.sh installs ffmpeg)")]
    NoFfmpeg(std::io::Error),
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    #[error(transparent)]
    Code(#[from] blockcode::BlockCodeError),
}

/// Frame `n` of a `width`×`height` test clip: a gradient that moves with `n`, and the code.
pub fn test_frame(n: u32, width: u32, height: u32) -> Result<Vec<u8>, blockcode::BlockCodeError> {
    let mut rgba = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            rgba.extend_from_slice(&[((x + 3 * n) % 256) as u8, ((y + n) % 256) as u8, 96, 255]);
        }
    }
    blockcode::draw(n, &mut rgba, width, height)?;
    Ok(rgba)
}

/// Writes a `frames`-frame clip at `fps` to `path` (`.mp4`).
pub fn write_test_clip(
    path: &Path,
    frames: u32,
    fps: FrameRate,
    width: u32,
    height: u32,
    codec: Codec,
) -> Result<(), TestClipError> {
    let size = format!("{width}x{height}");
    let rate = format!("{}/{}", fps.num, fps.den);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgba",
        "-s",
        &size,
        "-r",
        &rate,
        "-i",
        "-",
    ]);
    match codec {
        Codec::H264 => cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-bf",
            "0",
        ]),
        Codec::H265 => cmd.args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=10:bframes=0:log-level=error",
            "-tag:v",
            "hvc1",
        ]),
    };
    cmd.args(["-pix_fmt", "yuv420p", "-r", &rate]).arg(path);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(TestClipError::NoFfmpeg)?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| TestClipError::Ffmpeg("no stdin".into()))?;
        for n in 0..frames {
            stdin
                .write_all(&test_frame(n, width, height)?)
                .map_err(|e| TestClipError::Ffmpeg(format!("writing frame {n}: {e}")))?;
        }
    }
    let out = child.wait_with_output().map_err(TestClipError::NoFfmpeg)?;
    if !out.status.success() {
        return Err(TestClipError::Ffmpeg(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(())
}

/// The frame number in a rendered PNG: `Ok(None)` if the picture is all black (no layer
/// showed anything), an error if it cannot be read or its code is damaged.
pub fn read_png_frame(path: &Path) -> Result<Option<u32>, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgba8();
    let px = img.as_raw();
    if px.chunks(4).all(|c| c[..3] == [0, 0, 0]) {
        return Ok(None);
    }
    blockcode::read(px, img.width(), img.height())
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `NNNNNN.png` a render wrote in `dir`, in refresh order, with its frame number
/// ([`read_png_frame`]).
pub fn read_rendered(dir: &Path) -> Result<Vec<(u64, Option<u32>)>, String> {
    let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(k, p)| Ok((k, read_png_frame(&p)?)))
        .collect()
}
