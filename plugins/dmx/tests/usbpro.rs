//! The USB Pro output through a pseudo-terminal pair: exact bytes of the framed message.

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rockontrol_dmx::output::{OutputConfig, OutputThread};
use rockontrol_dmx::routes::{OutputPlan, UsbProRoute};
use rockontrol_engine::FrameSet;
use serialport::{SerialPort, TTYPort};

#[test]
fn usb_pro_gets_label_6_frames_with_start_code_and_512_slots() {
    let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
    let port = slave.name().expect("the pty has a device name");
    let plan = OutputPlan {
        usbpro: vec![UsbProRoute {
            frame_index: 1,
            port: port.clone(),
        }],
        ..OutputPlan::default()
    };
    let config = OutputConfig {
        cid: [1; 16],
        source_name: "usb".into(),
        interface: Ipv4Addr::LOCALHOST,
        multicast_ttl: 1,
        idle_rate: None,
        artnet_broadcast: None,
        artnet_timecode: None,
        priority: None,
    };
    let (tx, rx) = sync_channel(4);
    let mut thread = OutputThread::start(config, plan, rx).expect("start");
    let mut data = vec![0u8; 1024];
    data[512] = 0xff; // universe 2, slot 1
    data[513] = 0x7e; // a value equal to the start-of-message byte must pass untouched
    data[1023] = 0x42; // universe 2, slot 512
    tx.send(Arc::new(FrameSet {
        tick: 0,
        time: 0.0,
        rate: 44,
        deadline: Instant::now() + Duration::from_millis(23),
        universes: vec![1, 2],
        data,
    }))
    .expect("frame");

    master
        .set_timeout(Duration::from_millis(200))
        .expect("timeout");
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while bytes.len() < 518 && Instant::now() < deadline {
        let mut chunk = [0u8; 1024];
        if let Ok(n) = master.read(&mut chunk) {
            bytes.extend_from_slice(&chunk[..n]);
        }
    }
    assert_eq!(
        bytes.len(),
        518,
        "one message: 4 header + 513 data + 1 end byte"
    );
    assert_eq!(
        &bytes[..4],
        &[0x7e, 6, 0x01, 0x02],
        "start, label 6 (Output Only Send DMX), length 513 LSB first"
    );
    assert_eq!(bytes[4], 0x00, "DMX start code");
    assert_eq!(
        (bytes[5], bytes[6], bytes[516]),
        (0xff, 0x7e, 0x42),
        "slots 1, 2 and 512 of universe 2"
    );
    assert!(bytes[7..516].iter().all(|b| *b == 0), "other slots zero");
    assert_eq!(bytes[517], 0xe7, "end of message");
    thread.stop();
    assert_eq!(thread.stats().send_errors, 0);
}
