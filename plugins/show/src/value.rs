//! Channel levels and cue numbers, with the hand-friendly RON forms programmers write.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A level for one attribute of one fixture.
///
/// In RON a plain number is a normalised level (`0.5`, `1.0`, `0`, `1`), and `Dmx(200)` is a
/// raw DMX value at the channel's own resolution: 0..=255 on an 8-bit channel, 0..=65535 on a
/// 16-bit (coarse + fine) one. Raw values let a programmer hit a gobo slot or a strobe range
/// exactly; normalised values fade smoothly on any resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// 0.0 (off) ..= 1.0 (full).
    Norm(f64),
    /// Raw DMX at the channel's resolution (8 or 16 bit).
    Dmx(u32),
}

impl Value {
    /// The normalised level this value means on a channel of `bits` resolution (8 or 16).
    ///
    /// Raw 8-bit values map so that `Dmx(v)` on an 8-bit channel outputs exactly `v`; on a
    /// 16-bit channel raw values are 16-bit, so `Dmx(32768)` outputs coarse 128, fine 0.
    pub fn level(self, bits: u8) -> f64 {
        match self {
            Value::Norm(x) => x,
            Value::Dmx(v) => {
                let max = if bits >= 16 { 65535.0 } else { 255.0 };
                f64::from(v) / max
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Norm(x) => s.serialize_f64(x),
            Value::Dmx(v) => s.serialize_newtype_variant("Value", 1, "Dmx", &v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a level 0.0..=1.0 or a raw DMX value written Dmx(200)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                if (0.0..=1.0).contains(&v) {
                    Ok(Value::Norm(v))
                } else {
                    Err(E::custom(format_args!(
                        "level {v} is outside 0.0..=1.0 (write raw DMX as Dmx({v}))"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                // `1` and `0` are obvious levels; anything larger is almost surely raw DMX
                // written without `Dmx(..)`: say so instead of guessing.
                match v {
                    0 | 1 => Ok(Value::Norm(v as f64)),
                    _ => Err(E::custom(format_args!(
                        "level {v} is outside 0.0..=1.0 (write raw DMX as Dmx({v}))"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format_args!("level {v} is negative"))),
                }
            }
            // RON hands `Dmx(200)` to `deserialize_any` as a one-element sequence.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let raw: u32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("Dmx(..) needs a value, e.g. Dmx(200)"))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("Dmx(..) takes one value, e.g. Dmx(200)"));
                }
                if raw > 65535 {
                    return Err(de::Error::custom(format_args!(
                        "Dmx({raw}) is past 65535, the largest 16-bit value"
                    )));
                }
                Ok(Value::Dmx(raw))
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
                use de::VariantAccess;
                let (name, variant): (String, _) = data.variant()?;
                if name != "Dmx" {
                    return Err(de::Error::custom(format_args!(
                        "unknown value kind `{name}`, expected a level or Dmx(..)"
                    )));
                }
                let raw: u32 = variant.newtype_variant()?;
                Ok(Value::Dmx(raw))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

/// A cue number as consoles show it: `1`, `1.5`, `2.25` — up to three decimals.
///
/// Stored in thousandths so that ordering and equality are exact and `1.5` never prints as
/// `1.4999999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CueNumber(pub u32);

impl CueNumber {
    /// Parses `"1.5"`-style text (also used by the CLI and the REST API).
    pub fn parse(text: &str) -> Option<Self> {
        let v: f64 = text.trim().parse().ok()?;
        Self::from_f64(v)
    }

    /// The cue number for `v`, if it is non-negative with at most three decimals.
    pub fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() || v < 0.0 || v > f64::from(u32::MAX) / 1000.0 {
            return None;
        }
        let thousandths = (v * 1000.0).round();
        if (thousandths - v * 1000.0).abs() > 1e-6 {
            return None;
        }
        Some(CueNumber(thousandths as u32))
    }

    /// The number as a float (`1.5`).
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl fmt::Display for CueNumber {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for CueNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for CueNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        CueNumber::from_f64(v).ok_or_else(|| {
            de::Error::custom(format_args!(
                "cue number {v} must be non-negative with at most three decimals"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cue_numbers_print_like_a_console() {
        assert_eq!(
            CueNumber::parse("1").map(|c| c.to_string()).as_deref(),
            Some("1")
        );
        assert_eq!(
            CueNumber::parse("1.5").map(|c| c.to_string()).as_deref(),
            Some("1.5")
        );
        assert_eq!(
            CueNumber::parse("2.25").map(|c| c.to_string()).as_deref(),
            Some("2.25")
        );
        assert_eq!(CueNumber::parse("0.001"), Some(CueNumber(1)));
        assert_eq!(
            CueNumber::parse("1.0001"),
            None,
            "four decimals are refused"
        );
        assert_eq!(
            CueNumber::parse("-1"),
            None,
            "negative cue numbers are refused"
        );
        assert!(CueNumber::parse("1.5") < CueNumber::parse("2"));
    }

    #[test]
    fn raw_values_scale_to_the_channel_resolution() {
        assert_eq!(Value::Dmx(255).level(8), 1.0);
        assert_eq!(Value::Dmx(65535).level(16), 1.0);
        assert_eq!(Value::Norm(0.25).level(16), 0.25);
    }
}
