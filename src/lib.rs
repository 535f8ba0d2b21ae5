//! cleannvr: a network video recorder that keeps the cameras and drops the vendor cloud.
//!
//! Modules are listed in data-flow order: a camera's stream enters through
//! `ingest`, is cut into MP4 segments by `recorder` (using our own `mp4` box
//! writer), indexed by `store`, and served by `web`. Nothing flows backwards.

pub mod clock;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod live;
pub mod mp4;
pub mod nvr;
pub mod recorder;
pub mod store;
pub mod playback;
pub mod export;
pub mod transcode;
pub mod onvif;
pub mod auth;
pub mod audit;
pub mod web;
pub mod cli;
