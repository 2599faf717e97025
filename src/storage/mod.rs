//! Where datasets live. Every dataset is named by a location URL so that
//! object stores can join the local disk without changing the spec format.
//! [`publish`] is the staged-then-published file protocol every durable sink
//! follows.

mod location;
pub mod publish;

pub use location::Location;
pub use publish::{Published, StagedFile};
