//! The wire contract (see `docs/protocol.md`): what clients may send, what the server sends
//! back, and the limits that guard both. Pure data and validation; no I/O. The bottom layer:
//! it uses no other folder of the crate (`scripts/imports.mjs` checks that folders form layers),
//! so the names every layer shares live here: [`Stage`], [`ModelChoice`].

pub mod agui_http;
pub mod agui_readers;
pub mod command;
pub mod event;
pub mod export;
pub mod limits;
pub mod model;
pub mod patch;
pub mod stage;
pub mod view;
pub mod wire;

pub use command::{decode_frame, Approval, Command, Envelope, Frame, Rejection};
pub use event::{Event, Interrupt, MessageRole, Outcome};
pub use model::{ModelChoice, ProviderKind};
pub use patch::{PatchOp, PatchOpList};
pub use stage::Stage;
pub use wire::{
    ConnectionCustom, FailureCode, HttpErrorCode, InterruptReason, LoggedCustom, QueueReason,
    RejectionCode, SnapshotReason, WarningCode,
};

/// Session ids are exactly 32 lowercase hex characters (128 random bits); anything else is
/// refused before any storage is touched.
pub fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids() {
        assert!(super::is_session_id("0123456789abcdef0123456789abcdef"));
        assert!(!super::is_session_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!super::is_session_id("0123456789abcdef0123456789abcde"));
        assert!(!super::is_session_id("0123456789abcdef0123456789abcdeg"));
    }
}
