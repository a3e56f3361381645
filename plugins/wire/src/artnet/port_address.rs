//! The 15-bit Art-Net Port-Address.

use std::fmt;

use super::ArtNetError;

/// An Art-Net 4 Port-Address: Net (bits 14–8), Sub-Net (bits 7–4) and Universe (bits 3–0),
/// 0..=32767.
///
/// On the wire ArtDmx carries it as `SubUni` (low byte: Sub-Net and Universe) then `Net`, i.e.
/// little-endian; ArtPoll's target range carries it big-endian.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortAddress(u16);

impl PortAddress {
    /// The highest Port-Address.
    pub const MAX: PortAddress = PortAddress(0x7fff);

    /// `None` if `value` does not fit in 15 bits.
    #[must_use]
    pub const fn new(value: u16) -> Option<Self> {
        if value <= Self::MAX.0 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// From its parts: `net` 0..=127, `sub_net` 0..=15, `universe` 0..=15; `None` if one is larger.
    #[must_use]
    pub const fn from_parts(net: u8, sub_net: u8, universe: u8) -> Option<Self> {
        if net > 0x7f || sub_net > 0x0f || universe > 0x0f {
            return None;
        }
        Some(Self(
            ((net as u16) << 8) | ((sub_net as u16) << 4) | universe as u16,
        ))
    }

    /// From ArtDmx's `SubUni` and `Net` bytes; `None` if bit 7 of `net` is set.
    #[must_use]
    pub const fn from_sub_uni_net(sub_uni: u8, net: u8) -> Option<Self> {
        if net > 0x7f {
            return None;
        }
        Some(Self(((net as u16) << 8) | sub_uni as u16))
    }

    /// The 15-bit value.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Bits 14–8.
    #[must_use]
    pub const fn net(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Bits 7–4.
    #[must_use]
    pub const fn sub_net(self) -> u8 {
        ((self.0 >> 4) & 0x0f) as u8
    }

    /// Bits 3–0.
    #[must_use]
    pub const fn universe(self) -> u8 {
        (self.0 & 0x0f) as u8
    }

    /// The low byte, ArtDmx's `SubUni` (Sub-Net and Universe).
    #[must_use]
    pub const fn sub_uni(self) -> u8 {
        (self.0 & 0xff) as u8
    }
}

impl TryFrom<u16> for PortAddress {
    type Error = ArtNetError;

    fn try_from(value: u16) -> Result<Self, Self::Error> {
        Self::new(value).ok_or(ArtNetError::Invalid {
            field: "Port-Address",
            offset: 0,
            value: u32::from(value),
        })
    }
}

impl From<PortAddress> for u16 {
    fn from(address: PortAddress) -> Self {
        address.0
    }
}

impl fmt::Display for PortAddress {
    /// `net:sub-net:universe`, the way node configuration pages show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.net(), self.sub_net(), self.universe())
    }
}
