//! The plugin's error: what a command rejects with. Serialised as its message, which says what to do.

use serde::{Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] crate::core::Error),
    #[error(transparent)]
    Tauri(#[from] tauri::Error),
    #[error("invalid realtime plugin configuration: {0}")]
    Config(String),
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
