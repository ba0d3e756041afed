//! The container engine. It knows nothing about tests, reports or the CLI:
//! it takes a `SandboxSpec` and returns an `Outcome`.

mod capture;
mod spec;

pub use capture::{BoundedBuffer, CapturedOutput};
pub use spec::{Ending, Outcome, Report, Rusage, SandboxSpec, SetupFailure};
