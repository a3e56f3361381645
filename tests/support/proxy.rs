//! A TCP proxy that freezes: a partition that neither side can see at the TCP level.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A TCP proxy that forwards both ways until frozen; frozen, it forwards nothing but keeps
/// every socket open (a partition that neither side can see at the TCP level).
pub struct FreezingProxy {
    pub port: u16,
    frozen: Arc<AtomicBool>,
}

impl FreezingProxy {
    pub fn start(upstream: SocketAddr) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy addr").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || {
                for down in listener.incoming().flatten() {
                    let flag = Arc::clone(&flag);
                    let _ =
                        std::thread::Builder::new()
                            .name("proxy-conn".into())
                            .spawn(move || {
                                // Frozen: a new connection is held open and gets nowhere.
                                while flag.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                let Ok(up) = TcpStream::connect(upstream) else {
                                    return;
                                };
                                let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone())
                                else {
                                    return;
                                };
                                let back = Arc::clone(&flag);
                                let _ = std::thread::Builder::new()
                                    .name("proxy-up".into())
                                    .spawn(move || pump(up2, down2, &back));
                                pump(down, up, &flag);
                            });
                }
            })
            .expect("proxy thread");
        FreezingProxy { port, frozen }
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while not frozen; frozen, reads nothing and holds what it read.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                while frozen.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
