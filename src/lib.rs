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
//!                                              │
//!                        protocol: exit code, TAP, XML_OUTPUT_FILE ──► cases
//! ```
//!
//! Drivers (`driver`: `isotest cargo`, `isotest go`) are discovery too: they
//! build test programs and list the cases inside; `protocol` reads a
//! finished case's output (a panic, a skip) after the sandbox.
//!
//! `sandbox` is the container engine and knows nothing about tests or
//! reports; every `unsafe` block and raw syscall of the crate lives there.
//! Outside it, only the names its root exports are used. `config` holds
//! plain values (capability names, root modes) and imports nothing from
//! it: `run::container` maps a test's settings onto the sandbox's types.
//! `doctor` probes the host through the same exports, decides, then
//! renders; `style` is the terminal's look for `run` and `doctor`.
//! `history` (earlier runs' durations, statuses and peaks) feeds `select`
//! (time partitions, `--rerun-failed`, start order) and `run` (memory
//! demands); a finished run is recorded into it.

pub mod baseline;
pub mod cli;
pub mod config;
pub mod discover;
pub mod doctor;
pub mod driver;
pub mod duration;
pub mod history;
pub mod image;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod select;
pub mod size;
pub mod style;
