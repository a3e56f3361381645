//! The media library as a user and a receiver use it: real clips made by ffmpeg at test time,
//! the `rockontrol media` commands, the media server on loopback, curl as an independent HTTP
//! client, and the fetcher as a process killed with SIGKILL mid-download.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::node::{BIN, KEY, temp_dir};
use support::skip;

/// `ffmpeg ARGS…` or `None` (after a loud skip) when ffmpeg is missing.
fn ffmpeg(test: &str, args: &[&str]) -> Option<()> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            skip::unavailable(
                test,
                &format!("ffmpeg cannot run ({e}); `./dev setup` installs it"),
            );
            None
        }
    }
}

/// A 2 s H.264 clip at 30000/1001 fps, 160×120, short GOP without B-frames; `seed` varies the
/// pattern so two clips differ.
fn small_clip(test: &str, path: &Path, seed: u32) -> Option<()> {
    let src = format!("testsrc=size=160x120:rate=30000/1001:duration=2,hue=h={seed}");
    ffmpeg(
        test,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-c:v",
            "libx264",
            "-g",
            "10",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            path.to_str().expect("utf-8 path"),
        ],
    )
}

/// An uncompressed clip of about `mb` megabytes (640×360 I420 at 25 fps: 345,600 B a frame).
fn big_clip(test: &str, path: &Path, mb: u64) -> Option<()> {
    let frames = (mb * 1_000_000).div_ceil(345_600);
    let src = "testsrc=size=640x360:rate=25".to_string();
    ffmpeg(
        test,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            path.to_str().expect("utf-8 path"),
        ],
    )
}

fn blake3_hex(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().to_hex().to_string()
}

fn media(library: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("media")
        .args(args)
        .arg("--library")
        .arg(library)
        .output()
        .expect("run rockontrol media")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Adds `file` and returns its id (the first word of the line `add` prints).
fn add(library: &Path, file: &Path) -> String {
    let out = media(library, &["add", file.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "media add {}: {}",
        file.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
        .split_whitespace()
        .next()
        .expect("an id")
        .to_string()
}

fn show_with_clips(dir: &Path, clips: &[(&str, &str)]) -> PathBuf {
    let list: Vec<String> = clips
        .iter()
        .map(|(name, id)| format!("(name: \"{name}\", id: \"{id}\")"))
        .collect();
    let path = dir.join("show.ron");
    std::fs::write(
        &path,
        format!("(name: \"media\", clips: [{}])", list.join(", ")),
    )
    .expect("show");
    path
}

/// A process in its own process group, its stderr (the log) in a file; SIGKILLed on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(args: &[&str], log: PathBuf) -> Proc {
        Proc::start_env(args, &[], log)
    }

    /// [`Proc::start`] with more environment variables.
    fn start_env(args: &[&str], env: &[(&str, &Path)], log: PathBuf) -> Proc {
        use std::os::unix::process::CommandExt;
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("ROCKONTROL_API_KEY", KEY)
            .env("RUST_LOG", "info")
            .process_group(0)
            .stdout(File::create(log.with_extension("out")).expect("stdout file"))
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start rockontrol");
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no line with {needle:?} within {timeout:?}; log:\n{}",
            self.log()
        )
    }

    /// Waits for the process to exit by itself.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("still running after {timeout:?}; log:\n{}", self.log())
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `rockontrol media serve` for `show` from `library` (TLS with a certificate generated beside
/// `log`, unless `extra` says `--insecure`); returns it and its address.
fn serve(library: &Path, show: &Path, extra: &[&str], log: PathBuf) -> (Proc, SocketAddr) {
    let state = log.with_extension("state");
    let mut args = vec![
        "media",
        "serve",
        "--library",
        library.to_str().expect("utf-8"),
        "--show",
        show.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let server = Proc::start(&args, log);
    let line = server.wait_log("media server listening on ", Duration::from_secs(30));
    let addr = line
        .rsplit("://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .expect("address");
    (server, addr)
}

/// The certificate fingerprint a TLS `media serve` printed.
fn fingerprint_of(server: &Proc) -> String {
    let line = server.wait_log("SHA-256 fingerprint", Duration::from_secs(10));
    line.split_whitespace()
        .last()
        .expect("a fingerprint")
        .to_string()
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let head = temp_dir("media-curl-head").join("h");
    let out = Command::new("curl")
        .args(["-s", "-D", head.to_str().expect("utf-8")])
        .args(args)
        .output()
        .expect("curl");
    (
        std::fs::read_to_string(&head).unwrap_or_default(),
        out.stdout,
    )
}

fn status_line(head: &str) -> &str {
    head.lines().next().unwrap_or("")
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn add_probes_hashes_lists_and_gc_keeps_what_a_show_uses() {
    let dir = temp_dir("media-add");
    let library = dir.join("library");
    let (a, b) = (dir.join("a.mp4"), dir.join("b.mp4"));
    if small_clip("add_probes…", &a, 0).is_none() {
        return;
    }
    small_clip("add_probes…", &b, 90).expect("second clip");
    let id_a = add(&library, &a);
    let id_b = add(&library, &b);
    assert_eq!(
        id_a,
        blake3_hex(&a),
        "the id is the BLAKE3 of the clip's bytes"
    );
    assert_ne!(id_a, id_b);
    let stored = library.join("objects").join(&id_a);
    assert_eq!(
        std::fs::read(&stored).expect("stored"),
        std::fs::read(&a).expect("source")
    );
    // Adding the same bytes again keeps one copy under the same id.
    assert_eq!(add(&library, &a), id_a);

    let out = media(&library, &["show", &id_a]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("show prints JSON");
    let video = &meta["media"]["video"];
    assert_eq!(video["codec"], "video/x-h264", "{meta:#}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(
        (video["fps_num"].as_i64(), video["fps_den"].as_i64()),
        (Some(30000), Some(1001))
    );
    let frames = video["frames"].as_u64().expect("a frame count");
    assert!(
        (59..=61).contains(&frames),
        "2 s at 29.97 fps is 60 frames, got {frames}"
    );
    assert_eq!(video["alpha"], false);
    assert_eq!(meta["media"]["container"], "video/quicktime", "{meta:#}");
    assert_eq!(
        meta["size"].as_u64(),
        Some(std::fs::metadata(&a).expect("a").len())
    );

    // Not media: refused, by name, and nothing is stored.
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "this is not a video\n").expect("junk");
    let out = media(&library, &["add", junk.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a media file"),
        "{err}"
    );
    let missing = media(
        &library,
        &["add", dir.join("nope.mp4").to_str().expect("utf-8")],
    );
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("nope.mp4"),
        "{}",
        text(&missing.stderr)
    );

    let list = text(&media(&library, &["list"]).stdout);
    assert!(list.contains(&id_a) && list.contains(&id_b), "{list}");
    assert_eq!(list.lines().count(), 2, "two clips, no junk: {list}");

    let bad = media(&library, &["show", "../../etc/passwd"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("not a clip id"),
        "{}",
        text(&bad.stderr)
    );

    // gc: a show uses a; b goes.
    let show = show_with_clips(&dir, &[("intro", &id_a)]);
    let out = media(&library, &["gc", "--show", show.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("removed {id_b}")),
        "{}",
        text(&out.stdout)
    );
    assert!(stored.is_file(), "the clip the show uses is kept");
    assert!(
        !library.join("objects").join(&id_b).exists(),
        "the unused clip is gone"
    );

    let out = media(&library, &["rm", &id_a]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stored.exists());
    assert!(text(&media(&library, &["list"]).stdout).contains("empty"));
}

/// `ffprobe` of a file's first video stream: codec name, and each frame's picture type and
/// key flag, in order.
fn probe_frames(path: &Path) -> (String, Vec<(String, bool)>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=codec_name:frame=pict_type,key_frame", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let codec = json["streams"][0]["codec_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let frames = json["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            (
                f["pict_type"].as_str().unwrap_or("?").to_string(),
                f["key_frame"].as_i64() == Some(1),
            )
        })
        .collect();
    (codec, frames)
}

#[test]
fn add_transcodes_to_short_gop_playout_codecs_without_b_frames() {
    let dir = temp_dir("media-transcode");
    let library = dir.join("library");
    // A source as cameras and editors write it: long GOP, B-frames (x264's defaults).
    let source = dir.join("source.mp4");
    if ffmpeg(
        "add_transcodes…",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x180:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-g",
            "250",
            "-bf",
            "3",
            "-pix_fmt",
            "yuv420p",
            source.to_str().expect("utf-8"),
        ],
    )
    .is_none()
    {
        return;
    }
    let (_, before) = probe_frames(&source);
    assert!(
        before.iter().any(|(t, _)| t == "B"),
        "the source has B-frames"
    );
    for (codec, name) in [("h264", "h264"), ("h265", "hevc"), ("hap", "hap")] {
        let out = media(
            &library,
            &["add", "--transcode", codec, source.to_str().expect("utf-8")],
        );
        if codec == "hap" && !out.status.success() {
            // ffmpeg encodes HAP, but a GStreamer without a HAP decoder cannot play it: the
            // library refuses it, saying why and what to do.
            let error = text(&out.stderr);
            assert!(
                error.contains("GStreamer here cannot read HAP")
                    && error.contains("--transcode h264 or h265"),
                "{error}"
            );
            continue;
        }
        assert!(out.status.success(), "{codec}: {}", text(&out.stderr));
        let line = text(&out.stdout);
        let id = line.split_whitespace().next().expect("an id").to_string();
        assert!(line.contains("transcoded from source.mp4"), "{line}");
        let stored = library.join("objects").join(&id);
        assert_eq!(blake3_hex(&stored), id, "the id is the transcoded bytes'");
        let (got, frames) = probe_frames(&stored);
        assert_eq!(got, name, "{codec}: the stored clip's codec");
        assert_eq!(frames.len(), 75, "{codec}: 3 s at 25 fps, every frame kept");
        assert!(
            frames.iter().all(|(t, _)| t != "B"),
            "{codec}: no B-frames: {frames:?}"
        );
        let gop = if codec == "hap" { 1 } else { 10 };
        let keys: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, (_, key))| *key)
            .map(|(i, _)| i)
            .collect();
        let expected: Vec<usize> = (0..75).step_by(gop).collect();
        assert_eq!(keys, expected, "{codec}: a key frame every {gop} frames");
        let shown = media(&library, &["show", &id]);
        let meta: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
        assert_eq!(meta["recipe"]["codec"], codec, "{meta:#}");
        assert_eq!(meta["recipe"]["gop"], gop, "{meta:#}");
        assert_eq!(meta["recipe"]["b_frames"], 0);
        assert_eq!(meta["recipe"]["source_blake3"], blake3_hex(&source));
        assert!(
            meta["recipe"]["tool"]
                .as_str()
                .unwrap_or("")
                .starts_with("ffmpeg")
        );
    }
    let out = media(
        &library,
        &["add", "--transcode", "vp9", source.to_str().expect("utf-8")],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("choose h264, h265 or hap"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn objects_serve_ranges_if_range_and_clear_errors_to_curl() {
    let dir = temp_dir("media-serve");
    let library = dir.join("library");
    let clip = dir.join("c.mp4");
    if small_clip("objects_serve…", &clip, 30).is_none() {
        return;
    }
    let id = add(&library, &clip);
    let bytes = std::fs::read(&clip).expect("clip");
    let show = show_with_clips(&dir, &[("c", &id)]);
    let (_server, addr) = serve(&library, &show, &["--insecure"], dir.join("server.log"));
    let url = format!("http://{addr}/api/media/objects/{id}");
    let auth = format!("Authorization: Bearer {KEY}");
    let etag = format!("\"{id}\"");

    let (head, _) = curl(&["-I", "-H", &auth, &url]);
    assert!(status_line(&head).contains("200"), "{head}");
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"), "{head}");
    assert_eq!(header(&head, "etag"), Some(etag.as_str()), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(bytes.len().to_string().as_str())
    );

    let (head, body) = curl(&["-H", &auth, "-r", "100-199", &url]);
    assert!(status_line(&head).contains("206"), "{head}");
    assert_eq!(
        body,
        bytes[100..200],
        "the 206 body is bytes 100..=199 of the clip"
    );
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );

    let if_range = format!("If-Range: {etag}");
    let (head, body) = curl(&["-H", &auth, "-H", &if_range, "-r", "10-19", &url]);
    assert!(
        status_line(&head).contains("206"),
        "a matching If-Range keeps the range: {head}"
    );
    assert_eq!(body, bytes[10..20]);
    let stale = format!("If-Range: \"{}\"", "0".repeat(64));
    let (head, body) = curl(&["-H", &auth, "-H", &stale, "-r", "10-19", &url]);
    assert!(
        status_line(&head).contains("200"),
        "a stale If-Range gets the whole clip: {head}"
    );
    assert_eq!(body, bytes, "the whole clip");

    let past = format!("{}-", bytes.len() + 10);
    let (head, body) = curl(&["-H", &auth, "-r", &past, &url]);
    assert!(status_line(&head).contains("416"), "{head}");
    assert!(text(&body).contains("outside clip"), "{}", text(&body));

    let (head, body) = curl(&["-H", "Authorization: Bearer wrong", &url]);
    assert!(status_line(&head).contains("401"), "{head}");
    assert!(text(&body).contains("invalid API key"), "{}", text(&body));
    let (head, _) = curl(&[&url]);
    assert!(status_line(&head).contains("401"), "no key: {head}");

    for evil in ["..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", "ABC"] {
        let (head, body) = curl(&[
            "--path-as-is",
            "-H",
            &auth,
            &format!("http://{addr}/api/media/objects/{evil}"),
        ]);
        assert!(status_line(&head).contains("400"), "{evil}: {head}");
        assert!(
            text(&body).contains("not a clip id"),
            "{evil}: {}",
            text(&body)
        );
    }
    let unknown = "1".repeat(64);
    let (head, _) = curl(&[
        "-H",
        &auth,
        &format!("http://{addr}/api/media/objects/{unknown}"),
    ]);
    assert!(status_line(&head).contains("404"), "{head}");

    // The manifest: every show clip for a node the server was not told otherwise about.
    let (head, body) = curl(&[
        "-H",
        &auth,
        &format!("http://{addr}/api/media/manifest?node=n1"),
    ]);
    assert!(status_line(&head).contains("200"), "{head}");
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
    assert_eq!(manifest["node_id"], "n1");
    assert_eq!(manifest["clips"][0]["id"], id.as_str());
    assert_eq!(manifest["clips"][0]["name"], "c");
    assert_eq!(
        manifest["clips"][0]["size"].as_u64(),
        Some(bytes.len() as u64)
    );
}

/// Sends a PUT with these headers and body over a raw socket, closing the write side after
/// `send` bytes of the body (fewer than Content-Length: a truncated upload).
fn raw_put(addr: SocketAddr, path: &str, range: &str, length: usize, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Range: {range}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    s.write_all(send).expect("body");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn uploads_resume_refuse_truncation_bad_hashes_and_read_only_keys() {
    let dir = temp_dir("media-put");
    let library = dir.join("library");
    std::fs::create_dir_all(&library).expect("library");
    let clip = dir.join("u.mp4");
    if small_clip("uploads…", &clip, 60).is_none() {
        return;
    }
    let bytes = std::fs::read(&clip).expect("clip");
    let id = blake3_hex(&clip);
    let n = bytes.len();
    let show = show_with_clips(&dir, &[("u", &id)]);
    let (_server, addr) = serve(&library, &show, &["--insecure"], dir.join("server.log"));
    let path = format!("/api/media/objects/{id}");
    let url = format!("http://{addr}{path}");
    let auth = format!("Authorization: Bearer {KEY}");
    let half = n / 2;
    let first = dir.join("first");
    std::fs::write(&first, &bytes[..half]).expect("first half");

    let range = format!("Content-Range: bytes 0-{}/{n}", half - 1);
    let (head, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        &range,
        "--data-binary",
        &format!("@{}", first.display()),
        &url,
    ]);
    assert!(status_line(&head).contains("202"), "{head}");
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(reply["offset"].as_u64(), Some(half as u64));

    // Resent from 0 (a client that lost track): 409 and the offset to resume from.
    let (head, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        &range,
        "--data-binary",
        &format!("@{}", first.display()),
        &url,
    ]);
    assert!(status_line(&head).contains("409"), "{head}");
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(reply["offset"].as_u64(), Some(half as u64), "{reply}");

    // Truncated: Content-Length says the rest, 100 bytes come, the link closes.
    let rest = &bytes[half..];
    let answer = raw_put(
        addr,
        &path,
        &format!("bytes {half}-{}/{n}", n - 1),
        rest.len(),
        &rest[..100],
    );
    assert!(
        answer.is_empty() || answer.contains("400"),
        "a truncated upload is refused (or the link is dropped): {answer}"
    );
    assert!(
        !library.join("objects").join(&id).exists(),
        "a truncated upload is never installed"
    );
    // Ask where to resume: the bytes that came are kept.
    let (head, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        &range,
        "--data-binary",
        &format!("@{}", first.display()),
        &url,
    ]);
    assert!(status_line(&head).contains("409"), "{head}");
    let offset = serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")["offset"]
        .as_u64()
        .expect("offset") as usize;
    assert!(
        (half..=half + 100).contains(&offset),
        "kept {offset} bytes; sent {half} + 100"
    );

    // A read-only or wrong key may not upload.
    let (head, _) = curl(&[
        "-X",
        "PUT",
        "-H",
        "Authorization: Bearer wrong",
        "--data-binary",
        "x",
        &url,
    ]);
    assert!(status_line(&head).contains("401"), "{head}");

    // The rest, from the offset the server gave: installed, hashed, probed.
    let tail = dir.join("tail");
    std::fs::write(&tail, &bytes[offset..]).expect("tail");
    let range = format!("Content-Range: bytes {offset}-{}/{n}", n - 1);
    let (head, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        &range,
        "--data-binary",
        &format!("@{}", tail.display()),
        &url,
    ]);
    assert!(status_line(&head).contains("201"), "{head} {}", text(&body));
    assert_eq!(
        std::fs::read(library.join("objects").join(&id)).expect("installed"),
        bytes
    );
    let meta: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        meta["media"]["video"]["width"].as_u64(),
        Some(160),
        "{meta:#}"
    );

    // Bytes that do not hash to the id: refused, nothing installed.
    let other = "2".repeat(64);
    let (head, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "--data-binary",
        &format!("@{}", first.display()),
        &format!("http://{addr}/api/media/objects/{other}"),
    ]);
    assert!(status_line(&head).contains("422"), "{head}");
    assert!(text(&body).contains("hash to"), "{}", text(&body));
    assert!(!library.join("objects").join(&other).exists());
}

/// Runs `args` to its end (within a minute): whether it succeeded, and its log.
fn run_to_end(args: &[&str], log: PathBuf) -> (bool, String) {
    let mut p = Proc::start(args, log);
    let ok = p.wait_exit(Duration::from_secs(60)).success();
    (ok, p.log())
}

/// `media fetch` of `node`'s clips into `dir`, capped at `mbit`, the server pinned to
/// `fingerprint`.
fn fetch_args<'a>(
    addr: &'a str,
    dir: &'a str,
    node: &'a str,
    mbit: &'a str,
    fingerprint: &'a str,
) -> Vec<&'a str> {
    vec![
        "media",
        "fetch",
        "--master",
        addr,
        "--node",
        node,
        "--dir",
        dir,
        "--mbit",
        mbit,
        "--until-ready",
        "--fingerprint",
        fingerprint,
    ]
}

#[test]
fn fetch_resumes_after_kill_9_refetches_a_flipped_byte_and_holds_the_cap() {
    let dir = temp_dir("media-fetch");
    let library = dir.join("library");
    let big = dir.join("big.avi");
    let small = dir.join("small.mp4");
    if small_clip("fetch…", &small, 120).is_none() {
        return;
    }
    big_clip("fetch…", &big, 210).expect("big clip");
    let big_id = add(&library, &big);
    let small_id = add(&library, &small);
    let big_len = std::fs::metadata(&big).expect("big").len();
    assert!(
        big_len > 200_000_000,
        "the big clip is over 200 MB: {big_len}"
    );
    let show = show_with_clips(&dir, &[("big", &big_id), ("small", &small_id)]);
    let (server, addr) = serve(
        &library,
        &show,
        &["--plays", "dmx=", "--plays", "small-only=small"],
        dir.join("server.log"),
    );
    let addr = addr.to_string();
    // TLS by default: the fetcher pins the server's certificate; another fingerprint, or a
    // plaintext fetcher, gets nothing and says why.
    let fp = fingerprint_of(&server);
    let wrong = format!(
        "{}{}",
        if fp.starts_with("00") { "11" } else { "00" },
        &fp[2..]
    );
    let cache = dir.join("wrong-pin");
    let (ok, log) = run_to_end(
        &fetch_args(
            &addr,
            cache.to_str().expect("utf-8"),
            "small-only",
            "0",
            &wrong,
        ),
        dir.join("wrong-pin.log"),
    );
    assert!(!ok, "{log}");
    assert!(
        log.contains(&fp) && log.contains(&wrong),
        "the refusal names both fingerprints: {log}"
    );
    let mut args = fetch_args(
        &addr,
        cache.to_str().expect("utf-8"),
        "small-only",
        "0",
        &fp,
    );
    args.truncate(args.len() - 2);
    args.push("--insecure");
    let (ok, log) = run_to_end(&args, dir.join("plain.log"));
    assert!(!ok, "{log}");
    assert!(
        std::fs::read_dir(cache.join("objects")).map_or(0, |d| d.count()) == 0,
        "nothing fetched without the pin"
    );

    // Each node gets exactly its manifest.
    let cache = dir.join("small-only");
    let (ok, log) = run_to_end(
        &fetch_args(
            &addr,
            cache.to_str().expect("utf-8"),
            "small-only",
            "0",
            &fp,
        ),
        dir.join("small-only.log"),
    );
    assert!(ok, "{log}");
    assert!(cache.join("objects").join(&small_id).is_file());
    assert!(
        !cache.join("objects").join(&big_id).exists(),
        "small-only gets only small"
    );
    let cache = dir.join("dmx");
    let (ok, log) = run_to_end(
        &fetch_args(&addr, cache.to_str().expect("utf-8"), "dmx", "0", &fp),
        dir.join("dmx.log"),
    );
    assert!(ok, "{log}");
    let held = std::fs::read_dir(cache.join("objects"))
        .expect("objects")
        .count();
    assert_eq!(held, 0, "a node that plays nothing gets nothing");

    // Kill -9 mid-download at 400 Mbit/s (50 MB/s: about 4 s for the big clip).
    let cache = dir.join("media1");
    let cache_s = cache.to_str().expect("utf-8").to_string();
    let part = cache.join("tmp").join(format!("{big_id}.part"));
    let mut p = Proc::start(
        &fetch_args(&addr, &cache_s, "media1", "400", &fp),
        dir.join("m1-a.log"),
    );
    let start = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 40_000_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    p.kill9();
    let kept = std::fs::metadata(&part)
        .expect("the .part survives a kill")
        .len();
    assert!(kept < big_len, "killed mid-download: {kept} of {big_len}");
    assert!(
        !cache.join("objects").join(&big_id).exists(),
        "never installed half"
    );

    let mut p = Proc::start(
        &fetch_args(&addr, &cache_s, "media1", "400", &fp),
        dir.join("m1-b.log"),
    );
    assert!(
        p.wait_exit(Duration::from_secs(120)).success(),
        "{}",
        p.log()
    );
    let log = p.log();
    let resumed: u64 = log
        .lines()
        .find_map(|l| l.split("resumes at byte ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the restart resumes: {log}"));
    assert_eq!(
        resumed, kept,
        "it resumes at exactly the bytes kept, re-downloading none"
    );
    let sent: u64 = log
        .lines()
        .find(|l| l.contains("big") && l.contains("downloaded and verified"))
        .and_then(|l| l.split("verified: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a verified line for big: {log}"));
    assert_eq!(sent, big_len - kept, "only the missing bytes were sent");
    let stored = cache.join("objects").join(&big_id);
    assert_eq!(
        blake3_hex(&stored),
        big_id,
        "the resumed clip hashes to its id"
    );
    assert!(!part.exists(), "the .part was renamed into place");

    // Flip one byte: detected at start and fetched again.
    let mut bytes = std::fs::read(cache.join("objects").join(&small_id)).expect("small");
    bytes[1000] ^= 0xff;
    std::fs::write(cache.join("objects").join(&small_id), &bytes).expect("corrupt");
    let (ok, log) = run_to_end(
        &fetch_args(&addr, &cache_s, "media1", "0", &fp),
        dir.join("m1-c.log"),
    );
    assert!(ok, "{log}");
    assert!(
        log.contains("fetching it again"),
        "the flipped byte is detected: {log}"
    );
    assert_eq!(blake3_hex(&cache.join("objects").join(&small_id)), small_id);
    assert!(
        log.contains("big") && log.contains("on disk and verified"),
        "{log}"
    );

    // The cap: 200 Mbit/s over the big clip, within ±10 %.
    let cache = dir.join("media2");
    let mut p = Proc::start(
        &fetch_args(&addr, cache.to_str().expect("utf-8"), "media2", "200", &fp),
        dir.join("m2.log"),
    );
    assert!(
        p.wait_exit(Duration::from_secs(120)).success(),
        "{}",
        p.log()
    );
    let log = p.log();
    let rate: f64 = log
        .lines()
        .find(|l| l.contains("big") && l.contains("Mbit/s)"))
        .and_then(|l| l.rsplit('(').next())
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a rate for big: {log}"));
    assert!(
        (180.0..=220.0).contains(&rate),
        "capped at 200 Mbit/s ± 10 %, measured {rate}"
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

fn receiver_json(node: &str, port: u16, capability: &str, universes: &str, mbit: u32) -> String {
    format!(
        r#"{{"role": "receiver", "node_id": "{node}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": {universes}, "capabilities": ["{capability}"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9", "media_bandwidth_mbit": {mbit}}}"#
    )
}

#[test]
fn master_sends_each_receiver_its_manifest_and_reports_readiness() {
    use support::node::{Node, node_status, rest};
    let dir = temp_dir("media-e2e");
    let (a, b) = (dir.join("a.mp4"), dir.join("b.avi"));
    if small_clip("master_sends…", &a, 200).is_none() {
        return;
    }
    big_clip("master_sends…", &b, 30).expect("30 MB clip");
    let state = dir.join("state-master");
    let library = state.join("media");
    let id_a = add(&library, &a);
    let id_b = add(&library, &b);
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            "(name: \"media e2e\", universes: [(id: 1)], clips: [(name: \"a\", id: \"{id_a}\"), (name: \"b\", id: \"{id_b}\")])"
        ),
    )
    .expect("show");
    let (master, port, addr) = Node::start_media_master(&dir, &show, &state);
    // Two media nodes (one capped at 80 Mbit/s, so it is mid-transfer when killed) and a
    // DMX-only node.
    let nodes = [
        ("media-1", "media_playback", "[]", 0),
        ("media-2", "media_playback", "[]", 80),
        ("dmx-1", "dmx_output", "[1]", 0),
    ];
    let mut running = Vec::new();
    for (node, cap, universes, mbit) in nodes {
        let cfg = dir.join(format!("{node}.json"));
        std::fs::write(&cfg, receiver_json(node, port, cap, universes, mbit)).expect("config");
        running.push((
            cfg.clone(),
            Node::start("receiver", &cfg, None, &dir.join(node)),
        ));
    }

    // Each node's manifest: both clips for media nodes, nothing for the DMX node.
    let manifest = |node: &str| {
        rest(
            addr,
            "GET",
            &format!("/api/media/manifest?node={node}"),
            Some(KEY),
            None,
        )
    };
    let start = Instant::now();
    loop {
        let (status, m) = manifest("dmx-1");
        if status == 200 {
            assert_eq!(m["clips"].as_array().map(Vec::len), Some(0), "{m}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dmx-1 never registered: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, m) = manifest("media-1");
    assert_eq!(status, 200, "{m}");
    let ids: Vec<&str> = m["clips"]
        .as_array()
        .expect("clips")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [id_a.as_str(), id_b.as_str()],
        "media nodes get every show clip, by name"
    );
    let (status, _) = manifest("nobody");
    assert_eq!(status, 404, "an unknown node has no manifest");
    let (status, body) = rest(
        addr,
        "GET",
        "/api/media/manifest?node=media-1",
        Some("wrong"),
        None,
    );
    assert_eq!(status, 401, "{body}");

    // Kill media-2 mid-transfer (80 Mbit/s: about 3 s for b), then start it again.
    let part = dir
        .join("media-2")
        .join("media")
        .join("media-2")
        .join("tmp")
        .join(format!("{id_b}.part"));
    let start = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 5_000_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "media-2 never started on b"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running[1].1.kill();
    let kept = std::fs::metadata(&part).expect("the .part survives").len();
    let b_len = std::fs::metadata(&b).expect("b").len();
    assert!(kept < b_len, "killed mid-transfer: {kept} of {b_len}");
    let cfg = running[1].0.clone();
    running[1].1 = Node::start("receiver", &cfg, None, &dir.join("media-2"));

    // Both media nodes become ready, in /api/media/status and in their node status.
    let start = Instant::now();
    loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        let ready = |n: &str| status["nodes"][n]["ready"].as_bool() == Some(true);
        if ready("media-1") && ready("media-2") {
            assert!(
                status["nodes"].get("dmx-1").is_none(),
                "the DMX node plays no media: {status}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not ready in 90 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = node_status(addr, "media-2");
    let clips = st["media"]["clips"]
        .as_array()
        .expect("media in node status");
    assert!(clips.iter().all(|c| c["state"] == "ready"), "{st}");
    for node in ["media-1", "media-2"] {
        for id in [&id_a, &id_b] {
            let stored = dir
                .join(node)
                .join("media")
                .join(node)
                .join("objects")
                .join(id);
            assert_eq!(blake3_hex(&stored), *id, "{node} holds {id} byte for byte");
        }
    }
    assert!(
        !dir.join("dmx-1").join("media").exists(),
        "the DMX node keeps no media cache"
    );
    drop(running);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `POST /api/command` with `body` on the master: status and JSON answer.
fn command(addr: SocketAddr, body: &str) -> (u16, serde_json::Value) {
    support::node::rest(addr, "POST", "/api/command", Some(KEY), Some(body))
}

/// The nodes and clips a 409 from the GO gate names.
fn not_ready(answer: &serde_json::Value) -> Vec<(String, String, String)> {
    answer["media_not_ready"]
        .as_array()
        .unwrap_or_else(|| panic!("a media_not_ready list: {answer}"))
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (s("node"), s("clip"), s("state"))
        })
        .collect()
}

#[test]
fn go_gate_refuses_a_cue_until_its_clips_are_ready_where_they_play() {
    use support::node::{Node, rest};
    let dir = temp_dir("media-gate");
    let (a, b) = (dir.join("a.mp4"), dir.join("b.avi"));
    if small_clip("go_gate…", &a, 40).is_none() {
        return;
    }
    big_clip("go_gate…", &b, 30).expect("30 MB clip");
    let state = dir.join("state-master");
    let library = state.join("media");
    let id_a = add(&library, &a);
    let id_b = add(&library, &b);
    // Two walls on two receivers: cue 1 plays a on media-1's wall, cue 2 plays b on media-2's.
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "gate", universes: [(id: 1)],
  cue_lists: [(name: "main", cues: [(number: 1), (number: 2)])],
  playbacks: [(name: "main", cue_list: "main")],
  clips: [(name: "a", id: "{id_a}"), (name: "b", id: "{id_b}")],
  media: (
    outputs: [
      (name: "w1", node: "media-1", width: 160, height: 120, rate: "25"),
      (name: "w2", node: "media-2", width: 160, height: 120, rate: "25"),
    ],
    layers: [(name: "l1", output: "w1"), (name: "l2", output: "w2")],
    cues: [
      (cue_list: "main", cue: 1, actions: [Play(layer: "l1", clip: "a")]),
      (cue_list: "main", cue: 2, actions: [Play(layer: "l2", clip: "b")]),
    ],
  ),
)"#
        ),
    )
    .expect("show");
    let (master, port, addr) = Node::start_media_master(&dir, &show, &state);
    let go = r#"{"type": "go", "playback": "main"}"#;

    // No receiver yet: cue 1 is refused, naming media-1 and clip a.
    let (status, answer) = command(addr, go);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        not_ready(&answer),
        [("media-1".into(), "a".into(), "not reported".into())]
    );
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("media-1: a (not reported)") && error.contains("GET /api/media/status"),
        "the refusal says what and what to do: {error}"
    );

    // media-2 fetches b at 20 Mbit/s (about 12 s), so it is still busy when cue 2 is tried.
    let nodes = [
        ("media-1", "media_playback", "[]", 0),
        ("media-2", "media_playback", "[]", 20),
        ("dmx-1", "dmx_output", "[1]", 0),
    ];
    let mut running = Vec::new();
    for (node, cap, universes, mbit) in nodes {
        let cfg = dir.join(format!("{node}.json"));
        std::fs::write(&cfg, receiver_json(node, port, cap, universes, mbit)).expect("config");
        running.push(Node::start("receiver", &cfg, None, &dir.join(node)));
    }

    // Each receiver's manifest is what its outputs play.
    let ids = |node: &str| manifest_ids(addr, node);
    let start = Instant::now();
    let manifests = loop {
        let all: Vec<_> = ["media-1", "media-2", "dmx-1"]
            .map(ids)
            .into_iter()
            .collect();
        if all.iter().all(Option::is_some) {
            break all.into_iter().flatten().collect::<Vec<_>>();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "receivers never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        manifests,
        [vec![id_a.clone()], vec![id_b.clone()], vec![]],
        "media-1 plays a, media-2 plays b, dmx-1 nothing"
    );

    let wait_ready = |node: &str, timeout: Duration| {
        let start = Instant::now();
        loop {
            let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
            if status["nodes"][node]["ready"].as_bool() == Some(true) {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "{node} not ready in {timeout:?}: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_ready("media-1", Duration::from_secs(30));
    let (status, answer) = command(addr, go);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("executed")),
        "cue 1 goes once a is ready on media-1: {answer}"
    );

    // Cue 2 needs b on media-2, still downloading: refused, and the playback stays on cue 1.
    // (Once media-2 reported: its first heartbeat may come after media-1's.)
    let start = Instant::now();
    while rest(addr, "GET", "/api/media/status", Some(KEY), None).1["nodes"]["media-2"].is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "media-2 never reported"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, answer) = command(addr, go);
    assert_eq!(status, 409, "{answer}");
    let refused = not_ready(&answer);
    assert_eq!(refused.len(), 1, "{answer}");
    assert_eq!(
        (refused[0].0.as_str(), refused[0].1.as_str()),
        ("media-2", "b")
    );
    assert!(
        refused[0].2.starts_with("downloading") || refused[0].2 == "missing",
        "b is on its way: {answer}"
    );

    let status = wait_ready("media-2", Duration::from_secs(90));
    assert_eq!(
        status["nodes"]["media-2"]["clips"][0]["state"], "ready",
        "{status}"
    );
    let (status, answer) = command(addr, go);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("executed")),
        "cue 2 goes once b is ready on media-2: {answer}"
    );
    assert!(answer.get("media_not_ready").is_none(), "{answer}");
    // The refused GO did not move the playback: this GO went to cue 2, the last one.
    let (status, answer) = command(addr, go);
    assert_eq!(status, 422, "cue 2 was the last: {answer}");
    drop(running);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

fn peer_json(node: &str, port: u16) -> String {
    format!(
        r#"{{"role": "receiver", "node_id": "{node}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [], "capabilities": ["media_playback"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9", "media_bandwidth_mbit": 0,
  "media_serve": "127.0.0.1:0"}}"#
    )
}

#[test]
fn a_receiver_takes_chunks_from_peers_and_a_lying_peer_is_caught() {
    use support::node::{Node, rest};
    let dir = temp_dir("media-peers");
    let b = dir.join("b.avi");
    if big_clip("a_receiver_takes_chunks…", &b, 30).is_none() {
        return;
    }
    let state = dir.join("state-master");
    let id = add(&state.join("media"), &b);
    let show = show_with_clips(&dir, &[("b", &id)]);
    let (master, port, addr) = Node::start_media_master(&dir, &show, &state);
    let media_status = || rest(addr, "GET", "/api/media/status", Some(KEY), None).1;
    let wait_ready = |nodes: &[&str]| {
        let start = Instant::now();
        loop {
            let status = media_status();
            if nodes
                .iter()
                .all(|n| status["nodes"][n]["ready"].as_bool() == Some(true))
            {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{nodes:?} not ready in 90 s: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stored = |node: &str| {
        dir.join(node)
            .join("media")
            .join(node)
            .join("objects")
            .join(&id)
    };
    // Two peers fetch b from the master and serve it.
    let mut peers = Vec::new();
    for node in ["peer-1", "peer-2"] {
        let cfg = dir.join(format!("{node}.json"));
        std::fs::write(&cfg, peer_json(node, port)).expect("config");
        peers.push(Node::start("receiver", &cfg, None, &dir.join(node)));
    }
    let status = wait_ready(&["peer-1", "peer-2"]);
    let serves = |n: &str| {
        status["nodes"][n]["serves"]
            .as_str()
            .unwrap_or_else(|| panic!("{n} serves its clips: {status}"))
            .to_string()
    };
    let (peer_1, peer_2) = (serves("peer-1"), serves("peer-2"));
    // A peer without the key gets nothing (peers serve TLS with their own self-signed
    // certificates: `-k`).
    let (head, _) = curl(&["-k", &format!("https://{peer_1}/api/media/objects/{id}")]);
    assert!(status_line(&head).contains("401"), "{head}");

    // peer-2's copy goes bad on disk (it still says ready: it checks at start only), one byte
    // in every chunk, so whichever chunk it is asked for, its first answer is a lie.
    let mut bytes = std::fs::read(stored("peer-2")).expect("peer-2's copy");
    for at in (1_000..bytes.len()).step_by(4 * 1024 * 1024) {
        bytes[at] ^= 0xff;
    }
    std::fs::write(stored("peer-2"), &bytes).expect("corrupt peer-2");

    // A third receiver: its manifest names both peers; it takes chunks from them (the master
    // gives only what no peer holds: nothing here), catches peer-2's bad chunk and takes that
    // one from the master.
    let cfg = dir.join("late.json");
    std::fs::write(&cfg, peer_json("late", port)).expect("config");
    let late_state = dir.join("late");
    let late = Proc::start_env(
        &[
            "receiver",
            "--config",
            cfg.to_str().expect("utf-8"),
            "--headless",
            "--duration",
            "120",
        ],
        &[
            ("ROCKONTROL_STATE_DIR", &late_state),
            ("ROCKONTROL_MDNS_INTERFACE", Path::new("lo")),
        ],
        dir.join("late.log"),
    );
    let (status, manifest) = {
        let start = Instant::now();
        loop {
            let (status, m) = rest(
                addr,
                "GET",
                "/api/media/manifest?node=late",
                Some(KEY),
                None,
            );
            if status == 200 || start.elapsed() > Duration::from_secs(30) {
                break (status, m);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(status, 200, "{manifest}");
    let mut sources: Vec<String> = manifest["clips"][0]["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    sources.sort();
    let mut both = vec![peer_1.clone(), peer_2.clone()];
    both.sort();
    assert_eq!(
        sources, both,
        "the manifest names the ready peers: {manifest}"
    );
    // With the certificate each serves peers with, as each reported it: the late node pins them.
    for peer in [&peer_1, &peer_2] {
        assert!(
            manifest["peer_certificates"][peer]
                .as_str()
                .is_some_and(|f| f.parse::<rockontrol_tls::Fingerprint>().is_ok()),
            "the manifest names {peer}'s certificate: {manifest}"
        );
    }
    wait_ready(&["late"]);
    let line = late.wait_log("chunks from peers", Duration::from_secs(10));
    let chunks = 30_000_000_u64.div_ceil(4 * 1024 * 1024);
    assert!(
        line.contains(&format!(
            "{} chunks from peers, 1 from the master (1 refetched after a bad chunk)",
            chunks - 1
        )),
        "{line}"
    );
    let caught = late.wait_log("sent a bad chunk", Duration::from_secs(1));
    assert!(caught.contains(&format!("peer {peer_2}")), "{caught}");
    assert_eq!(
        blake3_hex(&stored("late")),
        id,
        "late holds b byte for byte"
    );
    drop(late);
    drop(peers);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three receivers start at once on a clip of ten chunks; the master's port is capped (80
/// Mbit/s), theirs are not. Each takes different chunks from the master and the rest from the
/// others while they are all still downloading (peers serve the verified chunks of a `.part`),
/// and every one ends with the clip byte for byte.
#[test]
fn receivers_that_start_at_once_trade_chunks_while_they_download() {
    use support::node::{Node, rest};
    let dir = temp_dir("media-cold");
    let clip = dir.join("c.avi");
    if big_clip("receivers_that_start_at_once…", &clip, 40).is_none() {
        return;
    }
    let size = std::fs::metadata(&clip).expect("clip").len();
    let state = dir.join("state-master");
    let id = add(&state.join("media"), &clip);
    let show = show_with_clips(&dir, &[("c", &id)]);
    let (master, port, addr) = Node::start_media_master_capped(&dir, &show, &state, Some(80));
    let names = ["rx-1", "rx-2", "rx-3"];
    let nodes: Vec<Node> = names
        .iter()
        .map(|node| {
            let cfg = dir.join(format!("{node}.json"));
            std::fs::write(&cfg, peer_json(node, port)).expect("config");
            Node::start("receiver", &cfg, None, &dir.join(node))
        })
        .collect();
    let start = Instant::now();
    let status = loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        if names
            .iter()
            .all(|n| status["nodes"][n]["ready"].as_bool() == Some(true))
        {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not all ready in 120 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = start.elapsed();
    let mut from_master = 0;
    for n in names {
        let node = &status["nodes"][n];
        let master_bytes = node["from_master_bytes"]
            .as_u64()
            .expect("from_master_bytes");
        let peer_bytes = node["from_peers_bytes"].as_u64().expect("from_peers_bytes");
        assert!(
            peer_bytes > 0,
            "{n} took chunks from peers that were still downloading too: {node}"
        );
        assert_eq!(
            master_bytes + peer_bytes,
            size,
            "{n} fetched each chunk once: {node}"
        );
        from_master += master_bytes;
        let stored = dir.join(n).join("media").join(n).join("objects").join(&id);
        assert_eq!(blake3_hex(&stored), id, "{n} holds the clip byte for byte");
        assert!(
            !dir.join(n)
                .join("media")
                .join(n)
                .join("tmp")
                .join(format!("{id}.part"))
                .exists(),
            "{n}'s .part was renamed into place"
        );
    }
    // Each chunk once from the master would be one copy; without peer assist, three. Nodes
    // say which chunks they are fetching, so the master is rarely asked twice for one.
    assert!(
        from_master < 2 * size,
        "the master sent {from_master} bytes, less than two copies ({})",
        2 * size
    );
    println!(
        "3 receivers at once, {size} bytes each, master capped at 80 Mbit/s: all ready in {:.1} s; the master sent {:.2} copies",
        took.as_secs_f64(),
        from_master as f64 / size as f64
    );
    drop(nodes);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receiver that serves peers fetches chunk by chunk, out of order: killed mid-transfer
/// (`kill -9`) and started again, it finds every chunk it had verified by its hash and fetches
/// only the others.
#[test]
fn a_sharing_receiver_killed_mid_transfer_finds_its_verified_chunks_again() {
    use support::node::{Node, rest};
    let dir = temp_dir("media-swarm-resume");
    let clip = dir.join("c.avi");
    if big_clip("a_sharing_receiver_killed…", &clip, 40).is_none() {
        return;
    }
    let size = std::fs::metadata(&clip).expect("clip").len();
    let state = dir.join("state-master");
    let id = add(&state.join("media"), &clip);
    let show = show_with_clips(&dir, &[("c", &id)]);
    let (master, port, addr) = Node::start_media_master_capped(&dir, &show, &state, Some(80));
    let cfg = dir.join("rx.json");
    std::fs::write(&cfg, peer_json("rx", port)).expect("config");
    let rx_state = dir.join("rx");
    let run = |log: &str| {
        Proc::start_env(
            &[
                "receiver",
                "--config",
                cfg.to_str().expect("utf-8"),
                "--headless",
                "--duration",
                "120",
            ],
            &[
                ("ROCKONTROL_STATE_DIR", &rx_state),
                ("ROCKONTROL_MDNS_INTERFACE", Path::new("lo")),
            ],
            dir.join(log),
        )
    };
    let node = |status: &serde_json::Value| status["nodes"]["rx"].clone();
    let mut first = run("rx-a.log");
    let start = Instant::now();
    // At 10 MB/s, three chunks verified in about 1.5 s: then kill it.
    let held = loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        let done = node(&status)["bytes_done"].as_u64().unwrap_or(0);
        if done >= 3 * 4 * 1024 * 1024 {
            break done;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill9();
    let objects = rx_state.join("media").join("rx").join("objects");
    assert!(held < size, "killed mid-transfer: {held} of {size}");
    assert!(!objects.join(&id).exists(), "never installed half");

    let second = run("rx-b.log");
    let start = Instant::now();
    let status = loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        if node(&status)["ready"].as_bool() == Some(true) {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not ready: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = second.wait_log("resumes with", Duration::from_secs(1));
    let resumed: u64 = line
        .split(" chunks held (")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the bytes it resumed with: {line}"));
    assert!(
        resumed >= held,
        "every chunk verified before the kill ({held} bytes) is found again: {line}"
    );
    let fetched = node(&status)["from_master_bytes"]
        .as_u64()
        .expect("counter");
    assert_eq!(
        fetched,
        size - resumed,
        "only the chunks not held were fetched: {status}"
    );
    assert_eq!(blake3_hex(&objects.join(&id)), id, "the clip byte for byte");
    drop(second);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn go_gate_set_to_warn_runs_the_cue_and_names_what_is_not_ready() {
    use support::node::Node;
    let dir = temp_dir("media-gate-warn");
    let a = dir.join("a.mp4");
    if small_clip("go_gate_set_to_warn…", &a, 120).is_none() {
        return;
    }
    let state = dir.join("state-master");
    let id_a = add(&state.join("media"), &a);
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "warn", universes: [(id: 1)],
  cue_lists: [(name: "main", cues: [(number: 1)])],
  playbacks: [(name: "main", cue_list: "main")],
  clips: [(name: "a", id: "{id_a}")],
  media: (
    gate: Warn,
    outputs: [(name: "w1", node: "media-1", width: 160, height: 120, rate: "25")],
    layers: [(name: "l1", output: "w1")],
    cues: [(cue_list: "main", cue: 1, actions: [Play(layer: "l1", clip: "a")])],
  ),
)"#
        ),
    )
    .expect("show");
    let (master, _port, addr) = Node::start_media_master(&dir, &show, &state);
    let (status, answer) = command(addr, r#"{"type": "go", "playback": "main"}"#);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("executed")),
        "Warn: the GO runs: {answer}"
    );
    assert_eq!(
        not_ready(&answer),
        [("media-1".into(), "a".into(), "not reported".into())]
    );
    assert_eq!(
        answer["warning"], "media not ready: media-1: a (not reported)",
        "{answer}"
    );
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13/14, one clip-need rule: the show places clip b only on media-2's layer, so
/// media-1's manifest starts without it. A media command that plays b on media-1's layer
/// puts it in the replicated media log; the master adds b to media-1's manifest from that
/// log, media-1 fetches it, and its status shows the layer playing b, frames advancing.
#[test]
fn a_commanded_clip_reaches_the_node_of_its_layer_and_plays_there() {
    use support::node::{Node, rest};
    let dir = temp_dir("media-commanded");
    let b = dir.join("b.mp4");
    if small_clip("a_commanded_clip…", &b, 7).is_none() {
        return;
    }
    let state = dir.join("state-master");
    let library = state.join("media");
    let id_b = add(&library, &b);
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "commanded", universes: [(id: 1)],
  clips: [(name: "b", id: "{id_b}")],
  media: (
    outputs: [
      (name: "w1", node: "media-1", width: 160, height: 120, rate: "25"),
      (name: "w2", node: "media-2", width: 160, height: 120, rate: "25"),
    ],
    layers: [(name: "l1", output: "w1", end: Loop), (name: "l2", output: "w2", clip: Some("b"))],
  ),
)"#
        ),
    )
    .expect("show");
    let (master, port, addr) = Node::start_media_master(&dir, &show, &state);
    let cfg = dir.join("media-1.json");
    std::fs::write(
        &cfg,
        receiver_json("media-1", port, "media_playback", "[]", 0),
    )
    .expect("config");
    let receiver = Node::start("receiver", &cfg, None, &dir.join("media-1"));
    let manifest = || manifest_ids(addr, "media-1");
    let start = Instant::now();
    let before = loop {
        if let Some(m) = manifest() {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "media-1 never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(before.is_empty(), "b is placed on media-2 only: {before:?}");

    let (status, answer) = command(
        addr,
        r#"{"type": "media", "action": "play", "layer": "l1", "clip": "b"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let start = Instant::now();
    while manifest().as_deref() != Some(std::slice::from_ref(&id_b)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b is added to media-1's manifest: {:?}",
            manifest()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // media-1 fetches b (its manifest is polled) and plays it on l1 from the command's time.
    let start = Instant::now();
    let mut frames = Vec::new();
    loop {
        let (_, st) = rest(addr, "GET", "/api/nodes/media-1/status", Some(KEY), None);
        let l1 = st["playback"]["layers"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["layer"] == "l1"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if l1["clip"] == "b"
            && let Some(f) = l1["frame"].as_u64()
            && !frames.contains(&f)
        {
            frames.push(f);
            if frames.len() >= 3 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "media-1 plays b (looped) on l1, frames moving: {frames:?} {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(receiver);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The clip ids of `node`'s manifest on the master at `addr` (none while it answers no 200).
fn manifest_ids(addr: SocketAddr, node: &str) -> Option<Vec<String>> {
    let (status, m) = support::node::rest(
        addr,
        "GET",
        &format!("/api/media/manifest?node={node}"),
        Some(KEY),
        None,
    );
    (status == 200).then(|| {
        m["clips"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// A TLS server that presents `identity` and counts what reaches it: connections, finished
/// handshakes, and bytes of requests read after one (an HTTP request carries the key).
struct Listener {
    addr: SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handshakes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    request_bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Listener {
    fn count(c: &std::sync::atomic::AtomicUsize) -> usize {
        c.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn impostor(identity: &rockontrol_tls::ServerIdentity) -> Listener {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let acceptor = identity.acceptor();
    let counts: [std::sync::Arc<AtomicUsize>; 3] = Default::default();
    let [accepted, handshakes, request_bytes] = counts.clone();
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, handshakes, request_bytes) =
                (acceptor.clone(), handshakes.clone(), request_bytes.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                handshakes.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    request_bytes.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    let [accepted, handshakes, request_bytes] = counts;
    Listener {
        addr,
        accepted,
        handshakes,
        request_bytes,
    }
}

/// Serves `store`'s media routes over TLS with `identity` (the key `KEY` reads), the manifest
/// being whatever `manifest` holds at the time.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the axum Response the library's Authorize returns as is"
)]
async fn media_server(
    store: rockontrol_library::store::Store,
    identity: &rockontrol_tls::ServerIdentity,
    manifest: std::sync::Arc<std::sync::Mutex<rockontrol_library::manifest::Manifest>>,
) -> SocketAddr {
    use rockontrol_library::serve::{MediaServer, error};
    let authorize = |headers: &axum::http::HeaderMap, _| {
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if key == Some(KEY) {
            Ok(())
        } else {
            Err(error(axum::http::StatusCode::UNAUTHORIZED, "the key"))
        }
    };
    let server = MediaServer::new(
        store,
        Box::new(authorize),
        Box::new(move |_| manifest.lock().ok().map(|m| m.clone())),
        Box::new(|| serde_json::json!({})),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls = Some(identity.acceptor());
    tokio::spawn(rockontrol_net::bounded::serve_bounded(
        listener,
        rockontrol_library::router(std::sync::Arc::new(server)),
        rockontrol_net::master::limits::Policy::new(16),
        Duration::from_secs(10),
        "test media server",
        tls,
    ));
    addr
}

/// Peers are pinned: the master's manifest names each peer's certificate (as the peer
/// reported it over its pinned link), and a fetcher over TLS sends its key only to a peer that
/// presents it. A host answering at a peer's address with another certificate gets a
/// handshake and no request (so never the key) and the clip comes from the master; a peer the
/// manifest names without a certificate is not asked at all; the real peer gives the chunks.
#[test]
fn a_fetcher_pins_peers_from_the_manifest_and_an_impostor_never_gets_the_key() {
    use rockontrol_library::fetch::{FetchSettings, Fetcher};
    use rockontrol_library::manifest::{Manifest, ManifestEntry};
    use rockontrol_library::store::Store;
    use rockontrol_tls::{Pin, PinSlot, PinSource, ServerIdentity};
    let dir = temp_dir("media-peer-pins");
    let clip = dir.join("clip.mp4");
    if small_clip("a_fetcher_pins_peers…", &clip, 40).is_none() {
        return;
    }
    let identity = |name: &str| {
        ServerIdentity::load_or_generate(&dir.join(format!("tls-{name}")), None, &[name.into()])
            .expect("a certificate")
    };
    let (master_id, peer_id, impostor_id) = (identity("master"), identity("peer"), identity("x"));
    let master_store = Store::open(dir.join("master")).expect("store");
    let meta = master_store.ingest(&clip, &mut |_| {}).expect("ingest");
    let peer_store = Store::open(dir.join("peer")).expect("store");
    peer_store.ingest(&clip, &mut |_| {}).expect("ingest");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let manifest = std::sync::Arc::new(std::sync::Mutex::new(Manifest::default()));
    let (master, peer, fake) = runtime.block_on(async {
        (
            media_server(master_store, &master_id, manifest.clone()).await,
            media_server(peer_store, &peer_id, std::sync::Arc::default()).await,
            impostor(&impostor_id).await,
        )
    });
    // The manifest names `source`, with `certificate` for it when given.
    let name = |source: SocketAddr, certificate: Option<&ServerIdentity>| {
        *manifest.lock().expect("manifest") = Manifest {
            node_id: "late".into(),
            clips: vec![ManifestEntry {
                id: meta.id,
                name: "clip".into(),
                size: meta.size,
                sources: vec![source.to_string()],
            }],
            peer_certificates: certificate
                .map(|c| (source.to_string(), c.fingerprint.to_string()))
                .into_iter()
                .collect(),
            ..Manifest::default()
        };
    };
    // Fetches into a fresh store; the bytes taken from peers.
    let fetch = |store: &str| {
        let store = Store::open(dir.join(store)).expect("store");
        let fetcher = Fetcher::new(
            store.clone(),
            FetchSettings {
                master: master.to_string(),
                key: Some(KEY.into()),
                node_id: "late".into(),
                parallel: 1,
                mbit: None,
                tls: Some(PinSlot::new(Some(Pin {
                    fingerprint: master_id.fingerprint,
                    source: PinSource::Config,
                }))),
            },
        );
        runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(60), fetcher.run(true, || false)).await
            })
            .expect("the fetch ends within 60 s")
            .expect("the fetch");
        assert_eq!(
            blake3_hex(&store.object_path(&meta.id)),
            meta.id.to_string(),
            "the clip arrived byte for byte"
        );
        let report = fetcher.report();
        report.lock().map(|r| r.from_peers_bytes).expect("report")
    };

    // An impostor at the peer's address (it presents another certificate than the one the
    // manifest names): asked, refused at the handshake, never sent a request.
    name(fake.addr, Some(&peer_id));
    assert_eq!(fetch("late-1"), 0, "nothing came from the impostor");
    assert!(
        Listener::count(&fake.accepted) >= 1,
        "the fetcher did try the named peer"
    );
    assert_eq!(
        Listener::count(&fake.request_bytes),
        0,
        "no request (so no key) reached the impostor"
    );
    assert_eq!(
        Listener::count(&fake.handshakes),
        0,
        "the fetcher refused the impostor's certificate"
    );

    // A peer named without a certificate (it serves plaintext, say): not asked at all.
    let before = Listener::count(&fake.accepted);
    name(fake.addr, None);
    assert_eq!(fetch("late-2"), 0);
    assert_eq!(
        Listener::count(&fake.accepted),
        before,
        "a peer without a certificate in the manifest is not contacted"
    );

    // The real peer, with its certificate: the clip's chunk comes from it.
    name(peer, Some(&peer_id));
    assert_eq!(fetch("late-3"), meta.size, "the chunk came from the peer");
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}
