//! ArtPoll (OpPoll 0x2000) and ArtPollReply (OpPollReply 0x2100): Art-Net discovery.

use std::net::Ipv4Addr;

use super::{
    ArtNetError, HEADER_LEN, OP_POLL, OP_POLL_REPLY, PORT, PortAddress, check_header, put_header,
};

// ArtPoll byte offsets (Art-Net 4: 22 bytes; Art-Net 1–3 controllers send 12 or 14).
const FLAGS: usize = 12;
const DIAG_PRIORITY: usize = 13;
const TARGET_TOP: usize = 14;
const TARGET_BOTTOM: usize = 16;
const POLL_ESTA_MAN: usize = 18;
const POLL_OEM: usize = 20;
const POLL_LEN: usize = 22;

/// ArtPoll: "who is there?" A controller broadcasts it; every node answers with ArtPollReply.
///
/// Decoding accepts every length from 12 bytes (ID, OpCode, ProtVer only) up; fields the packet
/// does not reach read as 0. Encoding always writes the 22-byte Art-Net 4 form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ArtPoll {
    /// Behaviour bits, see the `FLAG_*` constants.
    pub flags: u8,
    /// Lowest priority of diagnostics messages to send (`DP_*` values, e.g. 0x10 low).
    pub diag_priority: u8,
    /// Upper bound of the Port-Addresses addressed when [`ArtPoll::FLAG_TARGETED`] is set.
    pub target_top: PortAddress,
    /// Lower bound of the targeted Port-Addresses.
    pub target_bottom: PortAddress,
    /// ESTA manufacturer code of the controller.
    pub esta_man: u16,
    /// Art-Net OEM code of the controller.
    pub oem: u16,
}

impl ArtPoll {
    /// Bytes of the Art-Net 4 form this crate sends.
    pub const LEN: usize = POLL_LEN;
    /// Flags bit 1: send ArtPollReply whenever node conditions change, not only when polled.
    pub const FLAG_REPLY_ON_CHANGE: u8 = 0x02;
    /// Flags bit 2: send diagnostics messages.
    pub const FLAG_DIAGNOSTICS: u8 = 0x04;
    /// Flags bit 3: diagnostics unicast (else broadcast).
    pub const FLAG_DIAGNOSTICS_UNICAST: u8 = 0x08;
    /// Flags bit 4: disable VLC transmission.
    pub const FLAG_VLC_DISABLED: u8 = 0x10;
    /// Flags bit 5: only nodes with a Port-Address in `target_bottom..=target_top` reply.
    pub const FLAG_TARGETED: u8 = 0x20;

    /// Clears `buf` and writes the 22-byte packet into it.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(POLL_LEN);
        put_header(buf, OP_POLL);
        buf.push(self.flags);
        buf.push(self.diag_priority);
        buf.extend_from_slice(&self.target_top.get().to_be_bytes());
        buf.extend_from_slice(&self.target_bottom.get().to_be_bytes());
        buf.extend_from_slice(&self.esta_man.to_be_bytes());
        buf.extend_from_slice(&self.oem.to_be_bytes());
    }

    /// Encodes into a new buffer.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(POLL_LEN);
        self.encode_into(&mut buf);
        buf
    }

    /// Decodes an ArtPoll of any length from 12 bytes.
    ///
    /// A target Port-Address above 32767 reads as 32767 (a controller meaning "all the way up").
    ///
    /// # Errors
    /// [`ArtNetError::Incomplete`] below 12 bytes; [`ArtNetError::Invalid`] for a wrong ID,
    /// OpCode or ProtVer.
    pub fn decode(buf: &[u8]) -> Result<Self, ArtNetError> {
        check_header(buf, OP_POLL, true, HEADER_LEN)?;
        let get = |at: usize| buf.get(at).copied().unwrap_or(0);
        let get16 = |at: usize| match buf.get(at..at + 2) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        };
        let address = |at: usize| PortAddress::new(get16(at)).unwrap_or(PortAddress::MAX);
        Ok(Self {
            flags: get(FLAGS),
            diag_priority: get(DIAG_PRIORITY),
            target_top: address(TARGET_TOP),
            target_bottom: address(TARGET_BOTTOM),
            esta_man: get16(POLL_ESTA_MAN),
            oem: get16(POLL_OEM),
        })
    }
}

// ArtPollReply byte offsets. There is no ProtVer: the IP address follows the OpCode.
const IP: usize = 10;
const REPLY_PORT: usize = 14;
const VERS_INFO: usize = 16;
const NET_SWITCH: usize = 18;
const SUB_SWITCH: usize = 19;
const OEM: usize = 20;
const UBEA: usize = 22;
const STATUS1: usize = 23;
const ESTA_MAN: usize = 24;
const SHORT_NAME: usize = 26;
const SHORT_NAME_LEN: usize = 18;
const LONG_NAME: usize = 44;
const LONG_NAME_LEN: usize = 64;
const NODE_REPORT: usize = 108;
const NODE_REPORT_LEN: usize = 64;
const NUM_PORTS: usize = 172;
const PORT_TYPES: usize = 174;
const GOOD_INPUT: usize = 178;
const GOOD_OUTPUT_A: usize = 182;
const SW_IN: usize = 186;
const SW_OUT: usize = 190;
const ACN_PRIORITY: usize = 194;
const SW_MACRO: usize = 195;
const SW_REMOTE: usize = 196;
const STYLE: usize = 200;
const MAC: usize = 201;
const BIND_IP: usize = 207;
const BIND_INDEX: usize = 211;
const STATUS2: usize = 212;
const GOOD_OUTPUT_B: usize = 213;
const STATUS3: usize = 217;
const DEFAULT_RESPONDER_UID: usize = 218;
const USER: usize = 224;
const REFRESH_RATE: usize = 226;
const REPLY_LEN: usize = 239;
/// Older nodes stop after the MAC address.
const REPLY_MIN_LEN: usize = 207;

/// ArtPollReply: a node's identity, names, ports and status (the full 239-byte Art-Net 4 layout).
///
/// Decoding accepts 207 bytes (older nodes end after the MAC address) and anything longer; fields
/// past the end of a short reply read as 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtPollReply {
    /// The node's IPv4 address.
    pub ip: Ipv4Addr,
    /// Always 0x1936 (sent low byte first).
    pub port: u16,
    /// Node firmware version.
    pub version_info: u16,
    /// Bits 14–8 of the Port-Address of every port.
    pub net_switch: u8,
    /// Bits 7–4 of the Port-Address of every port.
    pub sub_switch: u8,
    /// Art-Net OEM code.
    pub oem: u16,
    /// Firmware version of the User Bios Extension Area; 0 if none.
    pub ubea_version: u8,
    /// General status bits.
    pub status1: u8,
    /// ESTA manufacturer code (sent low byte first).
    pub esta_man: u16,
    /// Up to 17 bytes.
    pub short_name: String,
    /// Up to 63 bytes.
    pub long_name: String,
    /// Up to 63 bytes, conventionally `#xxxx [yyyy] text`.
    pub node_report: String,
    /// Number of ports (0..=4 per bind index).
    pub num_ports: u16,
    /// Per port: direction (0x80 output, 0x40 input) and protocol (low bits, 0 = DMX512).
    pub port_types: [u8; 4],
    /// Per port: input status bits.
    pub good_input: [u8; 4],
    /// Per port: output status bits.
    pub good_output_a: [u8; 4],
    /// Per port: bits 3–0 of the input Port-Address.
    pub sw_in: [u8; 4],
    /// Per port: bits 3–0 of the output Port-Address.
    pub sw_out: [u8; 4],
    /// sACN priority the node uses when it converts Art-Net to sACN.
    pub acn_priority: u8,
    /// Macro key inputs.
    pub sw_macro: u8,
    /// Remote trigger inputs.
    pub sw_remote: u8,
    /// Equipment style, see the `STYLE_*` constants.
    pub style: u8,
    /// MAC address, most significant byte first; zero if unknown.
    pub mac: [u8; 6],
    /// IP of the root device when this reply is one of several bound ones.
    pub bind_ip: Ipv4Addr,
    /// Order of bound devices; 1 = root.
    pub bind_index: u8,
    /// Status 2 bits (web config, DHCP, 15-bit Port-Address, sACN capable …).
    pub status2: u8,
    /// Per port: more output status bits.
    pub good_output_b: [u8; 4],
    /// Status 3 bits.
    pub status3: u8,
    /// RDM UID of the default responder.
    pub default_responder_uid: [u8; 6],
    /// User-defined.
    pub user: u16,
    /// Maximum refresh rate of the node in Hz; 0 = unknown (44 Hz DMX512).
    pub refresh_rate: u16,
}

impl Default for ArtPollReply {
    fn default() -> Self {
        Self {
            ip: Ipv4Addr::UNSPECIFIED,
            port: PORT,
            version_info: 0,
            net_switch: 0,
            sub_switch: 0,
            oem: 0,
            ubea_version: 0,
            status1: 0,
            esta_man: 0,
            short_name: String::new(),
            long_name: String::new(),
            node_report: String::new(),
            num_ports: 0,
            port_types: [0; 4],
            good_input: [0; 4],
            good_output_a: [0; 4],
            sw_in: [0; 4],
            sw_out: [0; 4],
            acn_priority: 0,
            sw_macro: 0,
            sw_remote: 0,
            style: Self::STYLE_NODE,
            mac: [0; 6],
            bind_ip: Ipv4Addr::UNSPECIFIED,
            bind_index: 0,
            status2: 0,
            good_output_b: [0; 4],
            status3: 0,
            default_responder_uid: [0; 6],
            user: 0,
            refresh_rate: 0,
        }
    }
}

impl ArtPollReply {
    /// Bytes of the full Art-Net 4 reply this crate sends.
    pub const LEN: usize = REPLY_LEN;
    /// Shortest reply accepted (ends after the MAC address).
    pub const MIN_LEN: usize = REPLY_MIN_LEN;
    /// Style: a DMX to / from Art-Net device.
    pub const STYLE_NODE: u8 = 0x00;
    /// Style: a lighting console.
    pub const STYLE_CONTROLLER: u8 = 0x01;
    /// Style: a media server.
    pub const STYLE_MEDIA: u8 = 0x02;
    /// Style: a network routing device.
    pub const STYLE_ROUTE: u8 = 0x03;
    /// Style: a backup device.
    pub const STYLE_BACKUP: u8 = 0x04;
    /// Style: a configuration or diagnostic tool.
    pub const STYLE_CONFIG: u8 = 0x05;
    /// Style: a visualiser.
    pub const STYLE_VISUAL: u8 = 0x06;
    /// PortTypes bit 7: the port can output data from the network.
    pub const PORT_TYPE_OUTPUT: u8 = 0x80;
    /// PortTypes bit 6: the port can input data onto the network.
    pub const PORT_TYPE_INPUT: u8 = 0x40;

    /// Port-Address of output port `port` (0..4): NetSwitch, SubSwitch and SwOut\[port\].
    #[must_use]
    pub fn output_port_address(&self, port: usize) -> Option<PortAddress> {
        let sw = *self.sw_out.get(port)?;
        PortAddress::from_parts(self.net_switch & 0x7f, self.sub_switch & 0x0f, sw & 0x0f)
    }

    /// Port-Address of input port `port` (0..4): NetSwitch, SubSwitch and SwIn\[port\].
    #[must_use]
    pub fn input_port_address(&self, port: usize) -> Option<PortAddress> {
        let sw = *self.sw_in.get(port)?;
        PortAddress::from_parts(self.net_switch & 0x7f, self.sub_switch & 0x0f, sw & 0x0f)
    }

    /// Checks the three names fit their fields (with their NUL) and hold no NUL.
    ///
    /// # Errors
    /// [`ArtNetError::Invalid`] naming the field, with the name's length (or 0 at the NUL).
    pub fn validate(&self) -> Result<(), ArtNetError> {
        check_name(&self.short_name, "ShortName", SHORT_NAME, SHORT_NAME_LEN)?;
        check_name(&self.long_name, "LongName", LONG_NAME, LONG_NAME_LEN)?;
        check_name(
            &self.node_report,
            "NodeReport",
            NODE_REPORT,
            NODE_REPORT_LEN,
        )
    }

    /// Clears `buf` and writes the 239-byte reply into it.
    ///
    /// # Errors
    /// As [`ArtPollReply::validate`]; `buf` is left empty.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), ArtNetError> {
        buf.clear();
        self.validate()?;
        buf.reserve(REPLY_LEN);
        buf.extend_from_slice(&super::ID);
        buf.extend_from_slice(&OP_POLL_REPLY.to_le_bytes());
        buf.extend_from_slice(&self.ip.octets());
        buf.extend_from_slice(&self.port.to_le_bytes());
        buf.extend_from_slice(&self.version_info.to_be_bytes());
        buf.push(self.net_switch);
        buf.push(self.sub_switch);
        buf.extend_from_slice(&self.oem.to_be_bytes());
        buf.push(self.ubea_version);
        buf.push(self.status1);
        buf.extend_from_slice(&self.esta_man.to_le_bytes());
        put_name(buf, &self.short_name, SHORT_NAME_LEN);
        put_name(buf, &self.long_name, LONG_NAME_LEN);
        put_name(buf, &self.node_report, NODE_REPORT_LEN);
        buf.extend_from_slice(&self.num_ports.to_be_bytes());
        buf.extend_from_slice(&self.port_types);
        buf.extend_from_slice(&self.good_input);
        buf.extend_from_slice(&self.good_output_a);
        buf.extend_from_slice(&self.sw_in);
        buf.extend_from_slice(&self.sw_out);
        buf.push(self.acn_priority);
        buf.push(self.sw_macro);
        buf.push(self.sw_remote);
        buf.extend_from_slice(&[0; 3]); // spare
        buf.push(self.style);
        buf.extend_from_slice(&self.mac);
        buf.extend_from_slice(&self.bind_ip.octets());
        buf.push(self.bind_index);
        buf.push(self.status2);
        buf.extend_from_slice(&self.good_output_b);
        buf.push(self.status3);
        buf.extend_from_slice(&self.default_responder_uid);
        buf.extend_from_slice(&self.user.to_be_bytes());
        buf.extend_from_slice(&self.refresh_rate.to_be_bytes());
        buf.resize(REPLY_LEN, 0); // filler
        Ok(())
    }

    /// Encodes into a new buffer.
    ///
    /// # Errors
    /// As [`ArtPollReply::validate`].
    pub fn encode(&self) -> Result<Vec<u8>, ArtNetError> {
        let mut buf = Vec::with_capacity(REPLY_LEN);
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Decodes an ArtPollReply of 207 bytes or more.
    ///
    /// # Errors
    /// [`ArtNetError::Incomplete`] below 207 bytes; [`ArtNetError::Invalid`] for a wrong ID or
    /// OpCode. (ArtPollReply has no ProtVer.)
    pub fn decode(buf: &[u8]) -> Result<Self, ArtNetError> {
        check_header(buf, OP_POLL_REPLY, false, REPLY_MIN_LEN)?;
        // Zero-extend a short (older) reply, ignore what a longer (newer) one appends.
        let mut full = [0u8; REPLY_LEN];
        let present = buf.len().min(REPLY_LEN);
        full[..present].copy_from_slice(&buf[..present]);
        let u8_at = |at: usize| full[at];
        let be16 = |at: usize| u16::from_be_bytes([full[at], full[at + 1]]);
        let le16 = |at: usize| u16::from_le_bytes([full[at], full[at + 1]]);
        let four = |at: usize| [full[at], full[at + 1], full[at + 2], full[at + 3]];
        let six = |at: usize| {
            let mut out = [0; 6];
            out.copy_from_slice(&full[at..at + 6]);
            out
        };
        let name = |at: usize, len: usize| {
            let field = &full[at..at + len];
            let text = field.split(|&b| b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(text).into_owned()
        };
        Ok(Self {
            ip: Ipv4Addr::from(four(IP)),
            port: le16(REPLY_PORT),
            version_info: be16(VERS_INFO),
            net_switch: u8_at(NET_SWITCH),
            sub_switch: u8_at(SUB_SWITCH),
            oem: be16(OEM),
            ubea_version: u8_at(UBEA),
            status1: u8_at(STATUS1),
            esta_man: le16(ESTA_MAN),
            short_name: name(SHORT_NAME, SHORT_NAME_LEN),
            long_name: name(LONG_NAME, LONG_NAME_LEN),
            node_report: name(NODE_REPORT, NODE_REPORT_LEN),
            num_ports: be16(NUM_PORTS),
            port_types: four(PORT_TYPES),
            good_input: four(GOOD_INPUT),
            good_output_a: four(GOOD_OUTPUT_A),
            sw_in: four(SW_IN),
            sw_out: four(SW_OUT),
            acn_priority: u8_at(ACN_PRIORITY),
            sw_macro: u8_at(SW_MACRO),
            sw_remote: u8_at(SW_REMOTE),
            style: u8_at(STYLE),
            mac: six(MAC),
            bind_ip: Ipv4Addr::from(four(BIND_IP)),
            bind_index: u8_at(BIND_INDEX),
            status2: u8_at(STATUS2),
            good_output_b: four(GOOD_OUTPUT_B),
            status3: u8_at(STATUS3),
            default_responder_uid: six(DEFAULT_RESPONDER_UID),
            user: be16(USER),
            refresh_rate: be16(REFRESH_RATE),
        })
    }
}

fn check_name(
    name: &str,
    field: &'static str,
    offset: usize,
    field_len: usize,
) -> Result<(), ArtNetError> {
    if name.len() >= field_len {
        return Err(ArtNetError::invalid_len(field, offset, name.len()));
    }
    if let Some(index) = name.bytes().position(|b| b == 0) {
        return Err(ArtNetError::invalid(field, offset + index, 0u8));
    }
    Ok(())
}

fn put_name(buf: &mut Vec<u8>, name: &str, field_len: usize) {
    let start = buf.len();
    buf.extend_from_slice(name.as_bytes());
    buf.resize(start + field_len, 0);
}
