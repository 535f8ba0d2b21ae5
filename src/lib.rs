//! cleannvr: a network video recorder that keeps the cameras and drops the vendor cloud.
//!
//! Modules are listed in data-flow order: `frame` is the data model every
//! stage shares and `status` the per-camera board they report to; `onvif`
//! finds a camera's streams, `ingest` pulls them, `recorder` cuts them into
//! MP4 segments (with our own `mp4` box writer) that `store` indexes; `events`
//! records the cameras' own motion and tamper notifications; `live` fans frames out to viewers,
//! `transcode`, `playback` and `export` read what was stored, and `web`
//! serves it all behind `auth` and `audit`; `ptz` steers cameras on an
//! operator's command (the one path from the UI back to a camera's ONVIF
//! service). Nothing else flows backwards.
//! `error` is the one error type every layer's failures end as, with a kind
//! the web maps to a status. `nvr` wires the pieces together, `control` is the local socket admin
//! commands reach a running server through, `report` the Code of Practice review report, `cli` is the command line, and `demo`
//! is the built-in synthetic camera.

pub mod error;
pub mod logging;
pub mod archive;
pub mod clock;
pub mod timesync;
pub mod config;
pub mod onvif;
pub mod frame;
pub mod handoff;
pub mod nal;
pub mod status;
pub mod ingest;
pub mod mp4;
pub mod recorder;
pub mod supervisor;
pub mod store;
pub mod events;
pub mod live;
pub mod transcode;
pub mod playback;
pub mod export;
pub mod auth;
pub mod audit;
pub mod cameras;
pub mod ptz;
pub mod web;
pub mod alarms;
pub mod camera_states;
pub mod demo;
pub mod nvr;
pub mod reopen;
pub mod control;
pub mod backup;
pub mod report;
pub mod cli;
