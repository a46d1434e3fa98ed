//! The session demo, driven over real HTTP.

mod config;
mod cookies;
mod helpers;
mod persistence;
mod renewal;
