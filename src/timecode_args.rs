//! `--timecode-out`, `--timecode-chase`, `--timecode-rate` and `--timecode-from`, shared by
//! `run`, `master` and `render`: they amend the show's `timecode` section before it runs.

use rockontrol_show::{Show, TimecodeLink, TimecodeRate};
use rockontrol_timecode::TimecodeConfig;

/// Timecode switches from the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TimecodeArgs {
    /// Send the show's timecode: `artnet` (ArtTimeCode), `mtc:PATH` (MIDI timecode bytes to a
    /// raw MIDI device, FIFO or file), `ltc:FILE.wav` (LTC audio; `ltc:autoaudiosink` for the
    /// sound device). Repeatable; adds to the show's `timecode.out`.
    #[arg(long = "timecode-out", value_name = "LINK", value_parser = parse_link)]
    pub outputs: Vec<TimecodeLink>,
    /// Make the show clock follow incoming timecode: `artnet`, `mtc:PATH`, `ltc:FILE.wav`.
    #[arg(long = "timecode-chase", value_name = "LINK", value_parser = parse_link)]
    pub chase_link: Option<TimecodeLink>,
    /// The show's timecode rate: 24, 25, 29.97 (drop-frame) or 30.
    #[arg(long = "timecode-rate", value_name = "FPS", value_parser = parse_rate)]
    pub timecode_rate: Option<TimecodeRate>,
    /// The timecode label at show time 0, e.g. `01:00:00:00`.
    #[arg(long = "timecode-from", value_name = "HH:MM:SS:FF")]
    pub start: Option<String>,
}

impl TimecodeArgs {
    /// Puts the switches into `show`'s timecode section and checks it.
    ///
    /// # Errors
    /// Every problem of the section, named (a bad label, an action for a missing playback …).
    pub fn apply(&self, show: &mut Show) -> anyhow::Result<TimecodeConfig> {
        let setup = &mut show.timecode;
        for link in &self.outputs {
            if !setup.out.contains(link) {
                setup.out.push(link.clone());
            }
        }
        if let Some(chase) = &self.chase_link {
            setup.chase = Some(chase.clone());
        }
        if let Some(rate) = self.timecode_rate {
            setup.rate = rate;
        }
        if let Some(from) = &self.start {
            setup.start = Some(from.clone());
        }
        Ok(TimecodeConfig::from_show(show, None)?)
    }
}

/// `artnet`, `mtc:PATH`, `ltc:PATH`.
pub fn parse_link(text: &str) -> Result<TimecodeLink, String> {
    let text = text.trim();
    match text.split_once(':') {
        None if text.eq_ignore_ascii_case("artnet") => Ok(TimecodeLink::ArtNet),
        Some((kind, path)) if !path.is_empty() => match kind.to_ascii_lowercase().as_str() {
            "mtc" => Ok(TimecodeLink::Mtc(path.into())),
            "ltc" => Ok(TimecodeLink::Ltc(path.into())),
            _ => Err(format!("{text:?}: write artnet, mtc:PATH or ltc:FILE.wav")),
        },
        _ => Err(format!("{text:?}: write artnet, mtc:PATH or ltc:FILE.wav")),
    }
}

/// `24`, `25`, `29.97` (`29.97df`), `30`.
pub fn parse_rate(text: &str) -> Result<TimecodeRate, String> {
    use rockontrol_wire::timecode::FrameRate;
    Ok(match crate::artnet_args::parse_frame_rate(text)? {
        FrameRate::Film24 => TimecodeRate::Film24,
        FrameRate::Ebu25 => TimecodeRate::Ebu25,
        FrameRate::Df2997 => TimecodeRate::Df2997,
        FrameRate::Smpte30 => TimecodeRate::Smpte30,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse() {
        assert_eq!(parse_link("artnet"), Ok(TimecodeLink::ArtNet));
        assert_eq!(
            parse_link("mtc:/dev/snd/midiC1D0"),
            Ok(TimecodeLink::Mtc("/dev/snd/midiC1D0".into()))
        );
        assert_eq!(
            parse_link("ltc:out.wav"),
            Ok(TimecodeLink::Ltc("out.wav".into()))
        );
        assert!(parse_link("smpte").is_err());
        assert!(parse_link("ltc:").is_err());
    }
}
