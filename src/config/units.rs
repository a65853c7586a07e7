//! Small value types the config is written in, parsed from the strings a person types.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UDP port range written `"40000-40100"`, so WebRTC media can cross a firewall or port forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(pub RangeInclusive<u16>);

impl PortRange {
    /// First port of the range.
    pub fn min(&self) -> u16 {
        *self.0.start()
    }
    /// Last port of the range.
    pub fn max(&self) -> u16 {
        *self.0.end()
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lo, hi) = s.split_once('-').ok_or_else(|| format!("`{s}` is not a port range like \"40000-40100\""))?;
        let parse = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("`{}` is not a port number (1-65535)", p.trim()));
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo == 0 || lo > hi {
            return Err(format!("`{s}` must be low-high with 0 < low <= high"));
        }
        Ok(PortRange(lo..=hi))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min(), self.max())
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Free space to keep on the data partition: an absolute size (`"2GB"`) or a share of the
/// partition (`"10%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpaceLimit {
    Bytes(u64),
    Percent(f64),
}

impl SpaceLimit {
    /// The limit in bytes on a partition of `total` bytes.
    pub fn bytes_of(&self, total: u64) -> u64 {
        match *self {
            SpaceLimit::Bytes(b) => b,
            SpaceLimit::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

/// Parses `"2GB"`, `"500 MiB"`, `"1073741824"` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("`{s}` is not a size like \"2GB\", \"500MiB\" or \"10%\""))
}

impl FromStr for SpaceLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(SpaceLimit::Percent(p)),
                _ => Err(format!("`{s}` must be a percentage between 0% and 100%")),
            },
            None => parse_size(s).map(SpaceLimit::Bytes),
        }
    }
}

impl fmt::Display for SpaceLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceLimit::Bytes(b) => write!(f, "{}", bytesize::ByteSize(*b)),
            SpaceLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for SpaceLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for SpaceLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A byte size written like `"2GB"`, for limits such as `storage.max_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_size(&String::deserialize(d)?).map(Size).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&bytesize::ByteSize(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_shares_parse() {
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("lots").is_err());
        assert_eq!("10%".parse::<SpaceLimit>().unwrap(), SpaceLimit::Percent(10.0));
        assert_eq!("10%".parse::<SpaceLimit>().unwrap().bytes_of(1000), 100);
        assert_eq!("1MB".parse::<SpaceLimit>().unwrap(), SpaceLimit::Bytes(1_000_000));
        assert!("150%".parse::<SpaceLimit>().is_err());
    }

    #[test]
    fn port_range_parses_and_rejects() {
        assert_eq!("40000-40100".parse::<PortRange>().unwrap().max(), 40100);
        assert!("40100-40000".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
        assert!("1-70000".parse::<PortRange>().is_err());
    }
}
