//! Placeholder: this step is built in the chapter "The complete chat".
//!
//! Until then the crate only says where to look.

/// The chapter of the book that builds this step.
pub const CHAPTER: &str = "The complete chat";
