//! The engine's test kit, shared with the plugin's own tests.
#![allow(dead_code, unused_imports)]

#[path = "../../crates/core/tests/common/mod.rs"]
mod kit;

pub use kit::*;
