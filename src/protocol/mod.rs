//! The wire contract (see `docs/protocol.md`): what clients may send, what the server sends
//! back, and the limits that guard both. Pure data and validation; no I/O.

pub mod command;
pub mod event;
pub mod limits;
pub mod patch;

pub use command::{decode_command, Approval, Command, Envelope, Rejection};
pub use event::{Event, Interrupt, MessageRole, Outcome};
pub use patch::{PatchOp, PatchOpList};
