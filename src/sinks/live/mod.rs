//! Live sink: the newest rows of a table, kept in memory and broadcast to
//! the dashboard (Server-Sent Events). The server only reads the hub; the
//! pipeline is the only writer, so data still flows one way.

mod config;
mod hub;
mod sink;

pub use config::{LiveAlertLevel, LiveAlertsConfig, LiveSinkConfig};
pub use hub::{LiveEvent, LiveHub, LiveHubs};
pub use sink::LiveSink;
