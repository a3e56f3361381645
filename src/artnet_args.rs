//! Art-Net switches shared by `run`, `master` and `receiver`: where ArtPoll goes (for outputs
//! with `destination: Discovered`) and whether the show clock goes out as ArtTimeCode.

use std::net::Ipv4Addr;

use rockontrol_dmx::DmxSettings;
use rockontrol_wire::timecode::FrameRate;

/// Art-Net output settings from the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ArtNetArgs {
    /// Where ArtPoll goes to find the Art-Net nodes of outputs with `destination: Discovered`
    /// (every 3 s): a directed broadcast address, or one node's address. Default: the DMX
    /// interface's broadcast address (127.255.255.255 on loopback).
    #[arg(long, value_name = "IPV4")]
    pub artnet_broadcast: Option<Ipv4Addr>,
    /// Send the show clock as ArtTimeCode to every Art-Net destination and discovered node,
    /// at 24, 25, 29.97 (drop-frame) or 30 fps (the same as `--timecode-out artnet
    /// --timecode-rate FPS`).
    #[arg(long, value_name = "FPS", value_parser = parse_frame_rate)]
    pub artnet_timecode: Option<FrameRate>,
}

impl ArtNetArgs {
    /// Puts the switches that were given into `dmx`.
    pub fn apply(&self, dmx: &mut DmxSettings) {
        if let Some(address) = self.artnet_broadcast {
            dmx.artnet_broadcast = Some(address);
        }
        if let Some(rate) = self.artnet_timecode {
            // From 00:00:00:00 at show time 0; a show's `timecode` section (or
            // `--timecode-out artnet`) sets its own start label.
            dmx.artnet_timecode = Some(rockontrol_wire::timecode::RunningTimecode::new(
                rate,
                rockontrol_wire::timecode::Timecode::from_frames(0, rate),
            ));
        }
    }
}

/// `24`, `25`, `29.97` (or `29.97df`) and `30` fps.
pub fn parse_frame_rate(text: &str) -> Result<FrameRate, String> {
    match text.trim().trim_end_matches("fps").trim() {
        "24" => Ok(FrameRate::Film24),
        "25" => Ok(FrameRate::Ebu25),
        "29.97" | "29.97df" | "2997" => Ok(FrameRate::Df2997),
        "30" => Ok(FrameRate::Smpte30),
        other => Err(format!(
            "{other:?} is not an Art-Net timecode rate: 24, 25, 29.97 or 30"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_art_net_rates_parse() {
        assert_eq!(parse_frame_rate("24"), Ok(FrameRate::Film24));
        assert_eq!(parse_frame_rate("25fps"), Ok(FrameRate::Ebu25));
        assert_eq!(parse_frame_rate("29.97"), Ok(FrameRate::Df2997));
        assert_eq!(parse_frame_rate("30"), Ok(FrameRate::Smpte30));
        assert!(
            parse_frame_rate("60").is_err(),
            "Art-Net has no 60 fps type"
        );
    }
}
