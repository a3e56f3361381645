//! Media figures (README "Media benchmark"): software decode rate per stream (1080p and 4K,
//! RGBA and NV12 out of the pipeline), upload time per frame (RGBA and NV12), and
//! composition time per output frame for 1 and 4 layers.
//!
//! Ignored by default (it takes about a minute and the figures depend on the machine);
//! `./dev bench` runs it after `cargo bench`, or alone:
//! `cargo test --workspace --test media_bench -- --ignored --nocapture`. The heavy work is in
//! GStreamer, libav and the Vulkan driver (built optimised by their distributions), so a dev
//! build measures it fairly. `MEDIA_BENCH_SHORT=1` halves the frame counts.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::Path;
use std::time::{Duration, Instant};

use rockontrol_media::gpu::{GpuContext, LayerDraw, OutputCompositor};
use rockontrol_media::testclip::{Codec, write_test_clip};
use rockontrol_media::{ClipDecoder, DecoderChoice, Frame, LayerParams, PixelFormat, Yuv};
use rockontrol_show::{BlendMode, FrameRate};

const TIMEOUT: Duration = Duration::from_secs(60);

fn frames(n: u32) -> u32 {
    if std::env::var_os("MEDIA_BENCH_SHORT").is_some() {
        n / 2
    } else {
        n
    }
}

fn nv12() -> PixelFormat {
    PixelFormat::Nv12 {
        yuv: Yuv::default(),
    }
}

/// Decodes `clip`'s first `n` frames as fast as the pipeline goes: frames per second, and
/// frame 0 (kept for the upload figures).
fn decode(clip: &Path, format: PixelFormat, n: u32) -> (f64, Frame) {
    let d = ClipDecoder::open_as(clip, DecoderChoice::Software, format, 0, TIMEOUT).expect("open");
    let first = d.wait_exact(0, TIMEOUT).expect("frame 0");
    let start = Instant::now();
    for f in 1..u64::from(n) {
        d.wait_exact(f, TIMEOUT).expect("frame");
    }
    (f64::from(n - 1) / start.elapsed().as_secs_f64(), first)
}

/// Mean time of `f` over `n` runs, after one warm-up run.
fn mean(n: u32, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
#[ignore = "benchmark: ./dev bench, or --ignored --nocapture"]
fn media_figures() {
    let dir = std::env::temp_dir().join(format!("rk-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let gpu = GpuContext::headless();
    let mut kept = Vec::new();
    for (label, w, h, n) in [
        ("1080p", 1920, 1080, frames(120)),
        ("4K", 3840, 2160, frames(40)),
    ] {
        let clip = dir.join(format!("{label}.mp4"));
        write_test_clip(&clip, n, FrameRate::whole(30), w, h, Codec::H264).expect("test clip");
        for format in [PixelFormat::Rgba, nv12()] {
            let (fps, first) = decode(&clip, format, n);
            let name = if format == PixelFormat::Rgba {
                "RGBA"
            } else {
                "NV12"
            };
            println!("decode {label} H.264 (avdec_h264 → {name}), one stream: {fps:.1} fps");
            kept.push((label, name, first));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let gpu = match gpu {
        Ok(g) => g,
        Err(e) => return skip::unavailable("media_figures", &e.to_string()),
    };
    println!("GPU: {}", gpu.adapter);
    let n = frames(20);
    for (label, name, frame) in &kept {
        let mut c = OutputCompositor::new(&gpu, frame.width, frame.height, 1);
        // Each run: upload, flush (an empty submit) and wait, minus the flush and wait alone.
        let upload = mean(n, || {
            c.upload_frame(&gpu, 0, frame).expect("upload");
            gpu.queue.submit([]);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
        });
        let idle = mean(n, || {
            gpu.queue.submit([]);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
        });
        println!(
            "upload {label} {name} (write_texture, {:.1} MB): {:.2} ms per frame",
            frame.data.len() as f64 / 1e6,
            ms(upload.saturating_sub(idle))
        );
    }
    for (label, w, h) in [("1080p", 1920u32, 1080u32), ("4K", 3840, 2160)] {
        let Some((_, _, frame)) = kept.iter().find(|(l, n, _)| l == &label && *n == "NV12") else {
            continue;
        };
        let mut c = OutputCompositor::new(&gpu, w, h, 4);
        for slot in 0..4 {
            c.upload_frame(&gpu, slot, frame).expect("upload");
        }
        let empty = mean(n, || {
            c.render(&gpu, &[]).expect("render");
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
        });
        for layers in [1usize, 4] {
            let draws: Vec<LayerDraw> = (0..layers)
                .map(|slot| LayerDraw {
                    slot,
                    params: LayerParams {
                        opacity: 0.8,
                        blend: if slot == 0 {
                            BlendMode::Normal
                        } else {
                            BlendMode::Screen
                        },
                        ..LayerParams::FULL
                    },
                })
                .collect();
            let per = mean(n, || {
                c.render(&gpu, &draws).expect("render");
                gpu.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .expect("poll");
            });
            println!(
                "composite {label} output, {layers} NV12 layer(s): {:.2} ms per output frame \
                 (clear-only pass {:.2} ms)",
                ms(per),
                ms(empty)
            );
        }
    }
}
