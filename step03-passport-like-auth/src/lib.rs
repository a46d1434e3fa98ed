//! Placeholder: this step is built in the chapter "Passport, built small".
//!
//! Until then the crate only says where to look.

/// The chapter of the book that builds this step.
pub const CHAPTER: &str = "Passport, built small";
