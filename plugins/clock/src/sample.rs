//! One NTP-style exchange: four timestamps, and the offset and delay they imply (pure).
//!
//! ```text
//!   node (local clock)          master (master clock)
//!   t1 ── ping ───────────────▶ t2
//!   t4 ◀──────────────── pong ─ t3
//! ```
//!
//! `offset = ((t1 − t2) + (t4 − t3)) / 2` is the node's clock minus the master's, exact when
//! the two paths take equally long; `delay = (t4 − t1) − (t3 − t2)` is the round trip less the
//! master's turnaround. A path asymmetry `a = d_out − d_back` biases the offset by `−a / 2`,
//! which no exchange can see, so it is bounded by `delay / 2`.

/// One exchange, every timestamp in nanoseconds of its side's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Local clock when the ping left.
    pub t1: i64,
    /// Master clock when the ping arrived.
    pub t2: i64,
    /// Master clock when the pong left.
    pub t3: i64,
    /// Local clock when the pong arrived.
    pub t4: i64,
}

impl Sample {
    /// The node's clock minus the master's, in nanoseconds (exact for a symmetric path).
    pub fn offset(&self) -> i64 {
        let twice = (i128::from(self.t1) - i128::from(self.t2))
            + (i128::from(self.t4) - i128::from(self.t3));
        twice.div_euclid(2) as i64
    }

    /// Round-trip time on the network, less the master's turnaround, in nanoseconds.
    pub fn delay(&self) -> i64 {
        (self.t4 - self.t1) - (self.t3 - self.t2)
    }

    /// The local time the sample stands for: the middle of the exchange.
    pub fn local_mid(&self) -> i64 {
        self.t1 + (self.t4 - self.t1) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symmetric_exchange_gives_the_exact_offset_and_delay() {
        // The node is 37 ms ahead; each way takes 100 µs; the master turns round in 20 µs.
        let node_ahead = 37_000_000;
        let t1 = 1_000_000_000;
        let t2 = t1 - node_ahead + 100_000;
        let t3 = t2 + 20_000;
        let t4 = t3 + node_ahead + 100_000;
        let s = Sample { t1, t2, t3, t4 };
        assert_eq!(s.offset(), node_ahead, "offset is local − master");
        assert_eq!(
            s.delay(),
            200_000,
            "delay is the two paths, not the turnaround"
        );
        assert_eq!(s.local_mid(), t1 + 110_000);
    }

    #[test]
    fn an_asymmetric_path_biases_the_offset_by_half_the_asymmetry() {
        // Out 300 µs, back 100 µs: the offset reads 100 µs low.
        let s = Sample {
            t1: 0,
            t2: 300_000,
            t3: 300_000,
            t4: 400_000,
        };
        assert_eq!(s.offset(), -100_000);
        assert_eq!(s.delay(), 400_000);
    }
}
