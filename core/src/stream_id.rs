//! Stream entry ids, `<ms>-<seq>`: parsed, ordered as Redis orders them, the
//! next one, and the time in them. The trimmer, the archiver and dlq-tool all
//! read ids through this one type.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

/// A complete stream entry id, ordered as Redis orders them (by the
/// millisecond part, then the sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    ms: u64,
    seq: u64,
}

/// Text that is not a complete stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stream entry id (<ms>-<seq>)")]
pub struct InvalidStreamId(pub String);

impl StreamId {
    /// The id `ms-seq`.
    pub fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Parses `<ms>-<seq>`: both parts decimal digits only, each within
    /// 64 bits. Redis's shorthands (`*`, `-`, `+`, `$`, a bare `<ms>`) are not
    /// ids of an entry and are refused.
    pub fn parse(id: &str) -> Result<Self, InvalidStreamId> {
        let invalid = || InvalidStreamId(id.to_owned());
        let (ms, seq) = id.split_once('-').ok_or_else(invalid)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u64>().ok()
        };
        match (number(ms), number(seq)) {
            (Some(ms), Some(seq)) => Ok(Self { ms, seq }),
            _ => Err(invalid()),
        }
    }

    /// The millisecond part: when Redis added the entry (for ids it chose).
    pub fn ms(self) -> u64 {
        self.ms
    }

    /// The sequence within the millisecond.
    pub fn seq(self) -> u64 {
        self.seq
    }

    /// The smallest id after this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms.saturating_add(1), seq: 0 },
        }
    }

    /// The instant in the millisecond part, if it is one chrono can hold.
    pub fn time(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(i64::try_from(self.ms).ok()?).single()
    }
}

impl FromStr for StreamId {
    type Err = InvalidStreamId;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::parse(id)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_order_as_redis_orders_them() {
        let a = StreamId::parse("1700000000000-5").expect("an id");
        let b = StreamId::parse("1700000000001-0").expect("an id");
        assert!(a < b);
        assert!(StreamId::parse("5-10").expect("an id") > StreamId::parse("5-9").expect("an id"));
        assert_eq!((a.ms(), a.seq()), (1_700_000_000_000, 5));
        assert_eq!(a.to_string(), "1700000000000-5");
        assert_eq!("0-0".parse::<StreamId>().map(StreamId::next).map(|i| i.to_string()), Ok("0-1".to_owned()));
        assert_eq!(StreamId::new(7, u64::MAX).next(), StreamId::new(8, 0));
        for bad in
            ["", "nope", "1732600000000", "-1", "1-", "a-1", "1-2-3", "+1-0", "1-+0", "99999999999999999999-0", "*"]
        {
            assert_eq!(StreamId::parse(bad), Err(InvalidStreamId(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn the_time_is_the_millisecond_part() {
        let id = StreamId::parse("1732600000000-3").expect("an id");
        assert_eq!(id.time().map(|t| t.timestamp_millis()), Some(1_732_600_000_000));
        assert_eq!(StreamId::new(u64::MAX, 0).time(), None);
    }
}
