//! Placeholder: this step is built in the chapter "Only logged-in sockets".
//!
//! Until then the crate only says where to look.

/// The chapter of the book that builds this step.
pub const CHAPTER: &str = "Only logged-in sockets";
