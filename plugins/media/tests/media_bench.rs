//! First media figures (README "Benchmarks"): software decode rate per stream, RGBA upload
//! time per frame, and composition time per output frame for 1 and 4 layers.
//!
//! Ignored by default (it takes a minute and the figures depend on the machine):
//! `cargo test --workspace --test media_bench -- --ignored --nocapture`. The heavy work is in
//! GStreamer, libav and the Vulkan driver (built optimised by their distributions), so a dev
//! build measures it fairly.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::time::{Duration, Instant};

use rockontrol_media::gpu::{GpuContext, LayerDraw, OutputCompositor};
use rockontrol_media::testclip::{Codec, test_frame, write_test_clip};
use rockontrol_media::{ClipDecoder, DecoderChoice, LayerParams};
use rockontrol_show::{BlendMode, FrameRate};

fn decode_fps(width: u32, height: u32, frames: u32) -> f64 {
    let dir = std::env::temp_dir().join(format!("rk-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let clip = dir.join(format!("{width}x{height}.mp4"));
    write_test_clip(
        &clip,
        frames,
        FrameRate::whole(30),
        width,
        height,
        Codec::H264,
    )
    .expect("test clip");
    let d = ClipDecoder::open(&clip, DecoderChoice::Software, 0, Duration::from_secs(30))
        .expect("open");
    let start = Instant::now();
    for f in 0..u64::from(frames) {
        d.wait_exact(f, Duration::from_secs(30)).expect("frame");
    }
    let fps = f64::from(frames) / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    fps
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn media_figures() {
    println!(
        "decode (avdec_h264 → RGBA, one stream): 1080p {:.0} fps",
        decode_fps(1920, 1080, 120)
    );
    println!(
        "decode (avdec_h264 → RGBA, one stream): 4K {:.0} fps",
        decode_fps(3840, 2160, 30)
    );
    let gpu = match GpuContext::headless() {
        Ok(g) => g,
        Err(e) => return skip::unavailable("media_figures", &e.to_string()),
    };
    let (w, h) = (1920u32, 1080u32);
    let frame = test_frame(7, w, h).expect("frame");
    let mut c = OutputCompositor::new(&gpu, w, h, 4);
    for slot in 0..4 {
        c.upload(&gpu, slot, w, h, &frame).expect("upload");
    }
    c.render(&gpu, &[]).expect("warm up");
    c.read_back(&gpu).expect("warm up");
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        c.upload(&gpu, 0, w, h, &frame).expect("upload");
        c.render(&gpu, &[]).expect("flush");
        c.read_back(&gpu).expect("wait");
    }
    let upload = start.elapsed() / n;
    // The empty render + readback alone, to subtract.
    let start = Instant::now();
    for _ in 0..n {
        c.render(&gpu, &[]).expect("flush");
        c.read_back(&gpu).expect("wait");
    }
    let base = start.elapsed() / n;
    println!(
        "upload 1080p RGBA (write_texture) on {}: {:.2} ms",
        gpu.adapter,
        (upload.saturating_sub(base)).as_secs_f64() * 1e3
    );
    for layers in [1usize, 4] {
        let draws: Vec<LayerDraw> = (0..layers)
            .map(|slot| LayerDraw {
                slot,
                params: LayerParams {
                    opacity: 0.8,
                    blend: BlendMode::Screen,
                    ..LayerParams::FULL
                },
            })
            .collect();
        let start = Instant::now();
        for _ in 0..n {
            c.render(&gpu, &draws).expect("render");
            c.read_back(&gpu).expect("read back");
        }
        let per = (start.elapsed() / n).saturating_sub(base);
        println!(
            "composite 1080p, {layers} layer(s) on {}: {:.2} ms per output frame",
            gpu.adapter,
            per.as_secs_f64() * 1e3
        );
    }
}
