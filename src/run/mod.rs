//! The scheduler: runs the plan with N job slots and emits events.

mod events;
mod result;

pub use events::{Event, RunSummary};
pub use result::{Status, TestResult};
