//! Where datasets live. Every dataset is named by a location URL so that
//! object stores can join the local disk without changing the spec format.

mod location;

pub use location::Location;
