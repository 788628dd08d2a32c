//! Profiles: the TOML format, the key catalogue, includes, conditions and host facts.

pub mod avail;
pub mod catalogue;
pub mod error;
pub mod facts;
pub mod format;
pub mod resolve;
pub mod suggest;
pub mod value;

pub use error::{ProfileError, ProfileErrors};
pub use facts::Facts;
pub use resolve::{resolve, resolve_file, resolve_text, Effective, Entry, Library, Target};
pub use value::Want;

/// The profile used when none is chosen.
pub const DEFAULT_PROFILE: &str = "base";
