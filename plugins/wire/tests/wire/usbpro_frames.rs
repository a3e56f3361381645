//! Enttec DMX USB Pro framing vectors and the streaming decoder.

use rockontrol_wire::usbpro::{
    self, Frame, FrameDecoder, ReceivedDmx, UsbProError, WidgetParameters, label,
};

#[test]
fn send_dmx_pads_to_24_slots() {
    let mut expected = vec![
        0x7e, // start of message
        0x06, // label: Output Only Send DMX Packet Request
        0x19, // data length LSB: 25 (start code + 24 slots)
        0x00, // data length MSB
        0x00, // DMX start code
        0x01, 0x02, 0x03, 0xff, // slots 1..=4
    ];
    expected.extend_from_slice(&[0x00; 20]); // slots 5..=24: zero pad to the API minimum
    expected.push(0xe7); // end of message
    let mut buf = Vec::new();
    usbpro::encode_dmx(0x00, &[0x01, 0x02, 0x03, 0xff], &mut buf).expect("encodes");
    assert_eq!(buf, expected, "label 6 with 4 slots");
    let (frame, taken) = Frame::decode(&buf).expect("decodes");
    assert_eq!(taken, buf.len(), "whole frame taken");
    assert_eq!(frame.label, label::OUTPUT_ONLY_SEND_DMX, "label");
    assert_eq!(frame.data.len(), 25, "25 data bytes");
}

#[test]
fn send_dmx_full_universe_and_limits() {
    let slots = [0xaa; 512];
    let mut buf = Vec::new();
    usbpro::encode_dmx(0x00, &slots, &mut buf).expect("512 slots encode");
    assert_eq!(
        &buf[..5],
        &[0x7e, 0x06, 0x01, 0x02, 0x00],
        "header: length 513 = 0x0201 LSB first"
    );
    assert_eq!(buf.len(), 5 + 513, "framing + start code + 512");
    assert_eq!(buf.last(), Some(&0xe7), "end of message");
    for count in [0usize, 24, 25] {
        usbpro::encode_dmx(0x00, &vec![1; count], &mut buf).expect("encodes");
        assert_eq!(
            usize::from(u16::from_le_bytes([buf[2], buf[3]])),
            count.max(24) + 1,
            "{count} slots: data length"
        );
    }
    assert_eq!(
        usbpro::encode_dmx(0x00, &[0; 513], &mut buf),
        Err(UsbProError::Invalid {
            field: "DMX slot count",
            offset: 5,
            value: 513,
        }),
        "513 slots refused"
    );
    assert!(buf.is_empty(), "buffer left empty on error");
}

#[test]
fn get_widget_parameters_request_and_reply() {
    let mut buf = Vec::new();
    usbpro::encode_get_parameters(0, &mut buf).expect("encodes");
    assert_eq!(
        buf,
        vec![
            0x7e, // start of message
            0x03, // label: Get Widget Parameters Request
            0x02, // data length LSB: 2
            0x00, // data length MSB
            0x00, // user configuration size LSB: 0
            0x00, // user configuration size MSB
            0xe7, // end of message
        ],
        "label 3 request"
    );
    usbpro::encode_get_parameters(508, &mut buf).expect("508 is the maximum");
    assert_eq!(&buf[4..6], &[0xfc, 0x01], "508 sent LSB first");
    assert!(
        usbpro::encode_get_parameters(509, &mut buf).is_err(),
        "509 bytes of user configuration refused"
    );

    let reply = [
        0x7e, // start of message
        0x03, // label: Get Widget Parameters Reply
        0x07, // data length LSB: 7
        0x00, // data length MSB
        0x2c, // firmware version LSB
        0x01, // firmware version MSB: 0x012c
        0x09, // DMX output break time: 9 × 10.67 µs
        0x01, // mark after break time: 1 × 10.67 µs
        0x28, // output rate: 40 packets/s
        0xab, 0xcd, // user configuration data
        0xe7, // end of message
    ];
    let (frame, taken) = Frame::decode(&reply).expect("frame decodes");
    assert_eq!(taken, reply.len(), "whole reply taken");
    assert_eq!(frame.label, label::GET_WIDGET_PARAMETERS, "label");
    let parameters = WidgetParameters::decode(frame.data).expect("parameters decode");
    assert_eq!(
        parameters,
        WidgetParameters {
            firmware_version: 0x012c,
            break_time: 9,
            mab_time: 1,
            rate: 40,
            user_config: vec![0xab, 0xcd],
        },
        "every field"
    );
    assert_eq!(
        WidgetParameters::decode(&[1, 2, 3, 4]),
        Err(UsbProError::Incomplete {
            needed: 5,
            available: 4,
        }),
        "four bytes are not a reply"
    );
}

#[test]
fn set_widget_parameters_request() {
    let parameters = WidgetParameters {
        firmware_version: 0x0144,
        break_time: 9,
        mab_time: 1,
        rate: 40,
        user_config: vec![],
    };
    let mut buf = Vec::new();
    parameters.encode_set_into(&mut buf).expect("encodes");
    assert_eq!(
        buf,
        vec![
            0x7e, // start of message
            0x04, // label: Set Widget Parameters Request
            0x05, // data length LSB: 5
            0x00, // data length MSB
            0x00, // user configuration size LSB
            0x00, // user configuration size MSB
            0x09, // DMX output break time
            0x01, // mark after break time
            0x28, // output rate
            0xe7, // end of message
        ],
        "label 4 request (firmware version not sent)"
    );
    for (bad, field) in [
        (
            WidgetParameters {
                break_time: 8,
                ..parameters.clone()
            },
            "break time",
        ),
        (
            WidgetParameters {
                mab_time: 0,
                ..parameters.clone()
            },
            "mark after break time",
        ),
        (
            WidgetParameters {
                rate: 41,
                ..parameters.clone()
            },
            "output rate",
        ),
    ] {
        assert!(
            matches!(bad.encode_set_into(&mut buf), Err(UsbProError::Invalid { field: f, .. }) if f == field),
            "{field} out of range refused"
        );
    }
}

#[test]
fn received_dmx_packet() {
    let data = [0x00, 0x00, 0x10, 0x20];
    let received = ReceivedDmx::decode(&data).expect("decodes");
    assert_eq!(received.status, 0, "status good");
    assert_eq!(received.start_code, 0, "start code");
    assert_eq!(received.slots, &[0x10, 0x20], "slots");
    assert!(ReceivedDmx::decode(&[0]).is_err(), "one byte is too short");
}

#[test]
fn frame_decode_edges() {
    let frame = [0x7e, 0x0a, 0x00, 0x00, 0xe7];
    assert_eq!(
        Frame::decode(&frame),
        Ok((
            Frame {
                label: label::GET_WIDGET_SERIAL_NUMBER,
                data: &[],
            },
            5
        )),
        "zero-length frame"
    );
    assert_eq!(
        Frame::decode(&frame[..4]),
        Err(UsbProError::Incomplete {
            needed: 5,
            available: 4,
        }),
        "one byte short"
    );
    let mut long = frame.to_vec();
    long.push(0x7e);
    assert_eq!(
        Frame::decode(&long).map(|(_, n)| n),
        Ok(5),
        "one byte long: 5 taken"
    );
    assert_eq!(
        Frame::decode(&[0x7f, 0x0a, 0x00, 0x00, 0xe7]),
        Err(UsbProError::Invalid {
            field: "start of message",
            offset: 0,
            value: 0x7f,
        }),
        "wrong start byte"
    );
    assert_eq!(
        Frame::decode(&[0x7e, 0x0a, 0x00, 0x00, 0xe6]),
        Err(UsbProError::Invalid {
            field: "end of message",
            offset: 4,
            value: 0xe6,
        }),
        "wrong end byte"
    );
    assert_eq!(
        Frame::decode(&[0x7e, 0x06, 0x59, 0x02]),
        Err(UsbProError::Invalid {
            field: "data length",
            offset: 2,
            value: 601,
        }),
        "601 bytes of data"
    );
    let mut buf = Vec::new();
    assert!(
        Frame {
            label: 6,
            data: &[0; 601],
        }
        .encode_into(&mut buf)
        .is_err(),
        "601 bytes refused on encode"
    );
}

#[test]
fn frame_decoder_finds_frames_in_a_stream() {
    let mut first = Vec::new();
    usbpro::encode_dmx(0, &[1, 2, 3], &mut first).expect("encodes");
    let mut second = Vec::new();
    usbpro::encode_get_parameters(0, &mut second).expect("encodes");
    let mut stream = vec![0x00, 0x13, 0x37]; // line noise before the first frame
    stream.extend_from_slice(&first);
    stream.extend_from_slice(&[0x7e, 0x06, 0xff, 0xff]); // false start: length 65535
    stream.extend_from_slice(&[0x7e, 0x03, 0x01, 0x00, 0x55, 0x00]); // false start: no end byte
    stream.extend_from_slice(&second);

    // Feed it one byte at a time: frames must come out whole and in order.
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte));
        while let Some(frame) = decoder.next_frame() {
            frames.push((frame.label, frame.data.to_vec()));
        }
    }
    assert_eq!(frames.len(), 2, "two real frames found");
    assert_eq!(frames[0].0, label::OUTPUT_ONLY_SEND_DMX, "first is DMX");
    assert_eq!(&frames[0].1[..4], &[0, 1, 2, 3], "first carries the slots");
    assert_eq!(
        frames[1],
        (label::GET_WIDGET_PARAMETERS, vec![0, 0]),
        "second is the request"
    );
    assert_eq!(decoder.buffered(), 0, "nothing left over");
    assert_eq!(
        decoder.discarded_bytes(),
        3 + 4 + 6,
        "noise and both false starts skipped"
    );

    // Fed all at once, the result is the same.
    let mut decoder = FrameDecoder::new();
    decoder.push(&stream);
    let mut count = 0;
    while decoder.next_frame().is_some() {
        count += 1;
    }
    assert_eq!(count, 2, "same frames when fed in one piece");
}

#[test]
fn frame_decoder_waits_for_the_rest() {
    let mut frame = Vec::new();
    usbpro::encode_dmx(0, &[9; 100], &mut frame).expect("encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame[..50]);
    assert!(
        decoder.next_frame().is_none(),
        "half a frame is not a frame"
    );
    assert_eq!(decoder.buffered(), 50, "the half is kept");
    decoder.push(&frame[50..]);
    let got = decoder.next_frame().map(|f| f.data.len());
    assert_eq!(got, Some(101), "completed frame comes out");
    assert_eq!(decoder.discarded_bytes(), 0, "nothing skipped");
}
