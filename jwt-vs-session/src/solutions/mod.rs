//! The reference solutions of the chapter's exercises, one self-contained file
//! per exercise. Compiled only with `--features solutions`: CI builds the
//! exercise checks against them, to prove each check passes once its task is
//! done (and against the starter, to prove it fails before).
//!
//! Each file holds what its exercise changes, and a `token_app` with the
//! starter's signature that puts the change in place, so `tests/exercises.rs`
//! can build either. Everything the exercise leaves alone is the starter's own
//! public code, imported.

pub mod bearer_header;
pub mod close_at_expiry;
pub mod revoke_on_logout;
