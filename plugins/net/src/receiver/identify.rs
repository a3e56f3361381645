//! A receiver's identify flash (pure): which fixtures flash, and when they are lit.

use std::collections::BTreeSet;
use std::time::Duration;

/// A receiver's identify: its fixtures highlighted for the first half of every 0.5 s, on
/// top of whatever the programmer held before, which is handed back at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyFlash {
    /// Fixtures patched on the node's universes.
    pub fixtures: BTreeSet<u32>,
    /// The programmer's highlight when the identify began (restored after).
    pub saved_highlight: BTreeSet<u32>,
    /// Ticks run so far (counted, so a clock correction cannot stretch or cut the flash).
    pub elapsed: u64,
    /// Ticks in all.
    pub length: u64,
    /// Ticks per on or off half of a flash (a quarter second).
    pub half_period: u64,
}

impl IdentifyFlash {
    /// Whether the fixtures are lit at `elapsed` ticks in.
    pub fn lit_at(&self, elapsed: u64) -> bool {
        elapsed < self.length && (elapsed / self.half_period.max(1)).is_multiple_of(2)
    }
}

/// The fixtures patched on `universes` of `show`, flashing for `length`.
pub fn identify_flash(
    show: &rockontrol_engine::CompiledShow,
    universes: &[u16],
    highlight: &BTreeSet<u32>,
    length: Duration,
) -> IdentifyFlash {
    let fixtures = show
        .channels
        .iter()
        .filter(|c| {
            show.universes
                .get((c.coarse / 512) as usize)
                .is_some_and(|u| universes.contains(u))
        })
        .map(|c| c.fixture)
        .collect();
    let rate = f64::from(show.tick_rate.max(1));
    IdentifyFlash {
        fixtures,
        saved_highlight: highlight.clone(),
        elapsed: 0,
        length: (length.as_secs_f64() * rate).round().max(1.0) as u64,
        // 2 Hz: lit for a quarter second, dark (the show) for a quarter second.
        half_period: (rate / 4.0).round().max(1.0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_flashes_at_2_hz_for_its_length_then_stops() {
        let flash = IdentifyFlash {
            fixtures: BTreeSet::from([1, 2]),
            saved_highlight: BTreeSet::new(),
            elapsed: 0,
            // 5 s at 44 Hz, a quarter second (11 ticks) per half.
            length: 220,
            half_period: 11,
        };
        let lit: Vec<bool> = (0..44).map(|k| flash.lit_at(k)).collect();
        assert!(lit[..11].iter().all(|&l| l), "lit for the first 11 ticks");
        assert!(lit[11..22].iter().all(|&l| !l), "then the show for 11");
        assert!(lit[22..33].iter().all(|&l| l) && lit[33..].iter().all(|&l| !l));
        let flashes = (0..220)
            .filter(|&k| flash.lit_at(k) && (k == 0 || !flash.lit_at(k - 1)))
            .count();
        assert_eq!(flashes, 10, "2 Hz for 5 s");
        assert!(
            (220..300).all(|k| !flash.lit_at(k)),
            "nothing after the end"
        );
    }
}
