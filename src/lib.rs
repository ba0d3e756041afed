//! isotest: an integration-test runner that gives every test its own
//! throwaway Linux container.
//!
//! The flow, one way, plain data at every step:
//!
//! ```text
//! argv ──► cli ──► discover ──► select ──► plan (Vec<TestCase>)
//!                                              │
//!          report ◄── events ◄── run (scheduler, N job slots)
//!  (terminal, junit, json,                     │ one job per test
//!   html, trace)                               │
//!                                              ▼
//!                        sandbox: SandboxSpec ──► Outcome
//! ```
//!
//! `sandbox` is the container engine and knows nothing about tests or
//! reports; every `unsafe` block and raw syscall of the crate lives there.
//! `history` (earlier runs' durations, statuses and peaks) feeds `select`
//! (time partitions, `--rerun-failed`, start order) and `run` (memory
//! demands); a finished run is recorded into it.

pub mod baseline;
pub mod cli;
pub mod config;
pub mod discover;
pub mod doctor;
pub mod duration;
pub mod history;
pub mod image;
pub mod plan;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod select;
pub mod size;
