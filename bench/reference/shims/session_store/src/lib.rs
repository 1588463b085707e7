//! Shim of the original project's `session_store` crate: a session id is a
//! UUID (kept as a u128, so it is `Copy` as scope_lock.rs needs), written
//! and read as the usual hyphenated string.
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u128);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

impl std::str::FromStr for SessionId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let groups: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] || !s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
            return Err(format!("not a UUID: {s:?}"));
        }
        u128::from_str_radix(&groups.concat(), 16)
            .map(SessionId)
            .map_err(|e| e.to_string())
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SessionId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a UUID string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SessionId, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A fresh UUID v7 (48-bit Unix milliseconds, then random bits).
pub fn new_session_id() -> SessionId {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        & 0xffff_ffff_ffff;
    let mut rnd = [0u8; 10];
    // SAFETY: getrandom fills the buffer we pass, at most its length.
    let n = unsafe { libc::getrandom(rnd.as_mut_ptr().cast(), rnd.len(), 0) };
    assert_eq!(n, rnd.len() as isize, "getrandom");
    let mut r = 0u128;
    for b in rnd {
        r = (r << 8) | u128::from(b);
    }
    // 48 bits time | 4 bits version | 12 bits rand_a | 2 bits variant | 62 bits rand_b
    let rand_a = (r >> 62) & 0xfff;
    let rand_b = r & ((1u128 << 62) - 1);
    SessionId((u128::from(ms) << 80) | (0x7u128 << 76) | (rand_a << 64) | (0b10u128 << 62) | rand_b)
}
