//! [`Text`]: a message's data, shared and immutable, usually still the bytes the socket read.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A cheaply cloned, immutable UTF-8 string: the data of a [`Frame::Message`](crate::Frame::Message).
///
/// Why not `String`: a WebSocket text message, and an SSE event with one `data:` line, arrive as a slice of the
/// buffer the socket was read into. `Text` keeps that slice (reference-counted, no copy) until the data is
/// written into whatever carries it on (the page's script, JSON), and a clone costs a counter, not a copy.
/// Holding a `Text` keeps its read buffer alive; frames are short-lived, so that is what the engine wants.
///
/// It reads as a `&str` (`Deref`, `AsRef<str>`, `Borrow<str>`), compares with `str` and `String`, and
/// serializes as a JSON string, exactly as a `String` did.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(
    // tungstenite's UTF-8 bytes, kept private: it carries the proof of validity without code of our own that
    // could break it, and the public API names only `Text` and `bytes::Bytes`.
    Utf8Bytes,
);

impl Text {
    /// A `Text` of a static string, without allocation.
    pub const fn from_static(s: &'static str) -> Text {
        Text(Utf8Bytes::from_static(s))
    }

    /// `bytes` as text, if they are valid UTF-8 (checked once here, never again); otherwise the bytes back.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, Bytes> {
        // A clone of `Bytes` is a reference count, so the failure can hand the bytes back.
        Utf8Bytes::try_from(bytes.clone())
            .map(Text)
            .map_err(|_| bytes)
    }

    /// `bytes` as text, any invalid UTF-8 replaced by U+FFFD (a copy only then).
    pub fn from_utf8_lossy(bytes: Bytes) -> Text {
        Text::from_utf8(bytes).unwrap_or_else(|b| String::from_utf8_lossy(&b).into_owned().into())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The UTF-8 bytes, shared (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0.into()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// As `str` hashes, so that `Borrow<str>` lookups in maps work.
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for Text {
    /// Takes the string's buffer, no copy.
    fn from(s: String) -> Text {
        Text(s.into())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.into())
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text(s.as_str().into())
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Text {
        Text(String::from(s).into())
    }
}

impl From<Utf8Bytes> for Text {
    fn from(s: Utf8Bytes) -> Text {
        Text(s)
    }
}

impl From<Text> for Bytes {
    fn from(t: Text) -> Bytes {
        t.into_bytes()
    }
}

impl From<Text> for String {
    /// A copy: the bytes may be shared.
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        String::deserialize(deserializer).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compares_and_serializes_as_a_string() {
        let t = Text::from("héllo");
        assert_eq!(t, "héllo");
        assert_eq!("héllo", t);
        assert_eq!(t, String::from("héllo"));
        assert_eq!(t.len(), 6);
        assert_eq!(format!("{t} {t:?}"), "héllo \"héllo\"");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"héllo\"");
        assert_eq!(serde_json::from_str::<Text>("\"h\\u00e9llo\"").unwrap(), t);
        assert_eq!(Text::default(), "");
        assert_eq!(Text::from_static("x"), Text::from(String::from("x")));
    }

    #[test]
    fn a_slice_of_a_buffer_is_shared_not_copied() {
        let buffer = Bytes::from_static(b"data: hi\n");
        let t = Text::from_utf8(buffer.slice(6..8)).unwrap();
        assert_eq!(t, "hi");
        assert_eq!(t.as_ptr(), buffer[6..].as_ptr());
        assert_eq!(t.clone().as_ptr(), t.as_ptr());
    }

    #[test]
    fn invalid_utf8_is_refused_or_replaced() {
        let bad = Bytes::from_static(b"a\xffb");
        assert_eq!(Text::from_utf8(bad.clone()), Err(bad.clone()));
        assert_eq!(Text::from_utf8_lossy(bad), "a\u{fffd}b");
    }
}
