//! Hybrid logical clock timestamps, wrapped so the rest of Tributary never
//! names the `hybrid-clocks` crate (it could be swapped without touching the
//! record format).
//!
//! On the wire an HLC is a fixed-width string `WWWWWWWWWWWWWWWWWWW.CCCCCCCCCC`
//! (wall-clock nanoseconds since the Unix epoch, then the logical counter) so
//! that string order equals timestamp order for log consumers.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use hybrid_clocks::{Clock, Timestamp, WallNS, WallNST};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// One hybrid-logical-clock timestamp. Ordered by wall time, then counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc {
    wall_ns: u64,
    count: u32,
}

impl Hlc {
    pub fn new(wall_ns: u64, count: u32) -> Self {
        Hlc { wall_ns, count }
    }

    pub fn wall_ns(&self) -> u64 {
        self.wall_ns
    }

    pub fn wall_ms(&self) -> u64 {
        self.wall_ns / 1_000_000
    }

    fn from_ts(ts: Timestamp<WallNST>) -> Self {
        Hlc {
            wall_ns: ts.time.as_u64(),
            count: ts.count,
        }
    }

    fn to_ts(self) -> Timestamp<WallNST> {
        Timestamp {
            epoch: 0,
            time: WallNST::of_u64(self.wall_ns),
            count: self.count,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}.{:010}", self.wall_ns, self.count)
    }
}

impl FromStr for Hlc {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (wall, count) = s
            .split_once('.')
            .ok_or_else(|| Error::Decode(format!("hlc {s:?} is not WALL_NS.COUNT")))?;
        let wall_ns = wall
            .parse()
            .map_err(|e| Error::Decode(format!("hlc {s:?}: wall time: {e}")))?;
        let count = count
            .parse()
            .map_err(|e| Error::Decode(format!("hlc {s:?}: counter: {e}")))?;
        Ok(Hlc { wall_ns, count })
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A process-wide HLC source: monotonic, and advanced past every timestamp it observes.
#[derive(Debug)]
pub struct HlcClock {
    inner: Mutex<Clock<WallNS>>,
}

impl HlcClock {
    pub fn new() -> Result<Self> {
        let clock = Clock::wall_ns().map_err(|e| Error::Clock(e.to_string()))?;
        Ok(HlcClock {
            inner: Mutex::new(clock),
        })
    }

    /// A timestamp later than every one this clock issued or observed.
    pub fn now(&self) -> Result<Hlc> {
        let mut clock = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        clock
            .now()
            .map(Hlc::from_ts)
            .map_err(|e| Error::Clock(e.to_string()))
    }

    /// Moves the clock past a timestamp seen from another node.
    pub fn observe(&self, hlc: Hlc) {
        let mut clock = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        clock.observe(&hlc.to_ts());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_order_is_timestamp_order() {
        let a = Hlc::new(5, 9);
        let b = Hlc::new(10, 0);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<Hlc>().ok(), Some(a));
    }

    #[test]
    fn clock_is_monotonic_and_observes() -> Result<()> {
        let clock = HlcClock::new()?;
        let a = clock.now()?;
        let far = Hlc::new(a.wall_ns() + 10_000_000_000, 3);
        clock.observe(far);
        let b = clock.now()?;
        assert!(b > far);
        Ok(())
    }

    #[test]
    fn rejects_garbage() {
        assert!("nope".parse::<Hlc>().is_err());
        assert!("1.x".parse::<Hlc>().is_err());
    }
}
