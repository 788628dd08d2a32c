//! Tuning: plan, apply, check and revert a profile against the kernel (or a stand-in tree),
//! persist it for boot, and report boot-time conflicts.

pub mod apply;
pub mod conflicts;
pub mod kernel;
pub mod netns;
pub mod plan;
pub mod state;
pub mod tuned;

pub use apply::{apply, revert, ApplyOptions, Outcome, Step, StepResult};
pub use kernel::Kernel;
pub use netns::Netns;
pub use plan::{plan, Action, Item, Plan};
pub use state::Store;
