//! The connection token.

use std::fmt;

/// An MPTCP connection's local token: what the path manager's commands take and its
/// events carry. It displays in hexadecimal, eight digits, as `ip mptcp monitor` prints
/// it (`{token}` gives `0a1b2c3d`); `"0a1b2c3d".parse()` and `"0x0a1b2c3d".parse()` give
/// it back. With the `serde` feature it serializes as that hex string.
///
/// ```
/// let t = mptcp::Token::new(0x0a1b_2c3d);
/// assert_eq!(t.to_string(), "0a1b2c3d");
/// assert_eq!("0x0a1b2c3d".parse::<mptcp::Token>(), Ok(t));
/// assert_eq!(u32::from(t), 0x0a1b_2c3d);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(u32);

impl Token {
    /// The token with this value.
    pub const fn new(value: u32) -> Token {
        Token(value)
    }

    /// Its value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for Token {
    fn from(v: u32) -> Token {
        Token(v)
    }
}

impl From<Token> for u32 {
    fn from(t: Token) -> u32 {
        t.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:08x})", self.0)
    }
}

impl fmt::LowerHex for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A token that is not 1 to 8 hexadecimal digits (an optional `0x` before them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a token: expected up to 8 hexadecimal digits, as ip mptcp prints them")]
pub struct ParseTokenError {
    /// The text that was parsed.
    pub value: String,
}

impl std::str::FromStr for Token {
    type Err = ParseTokenError;
    fn from_str(s: &str) -> Result<Token, ParseTokenError> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParseTokenError {
                value: s.to_string(),
            });
        }
        u32::from_str_radix(digits, 16)
            .map(Token)
            .map_err(|_| ParseTokenError {
                value: s.to_string(),
            })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
