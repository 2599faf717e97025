//! What one client, or all of them, may take from the server. Every limit
//! is a `serve`/`up` flag (`cli::args::LimitArgs`); the defaults suit one
//! ward on a small machine.

use std::time::Duration;

/// A token-bucket rate: `per_second` requests on average per client, up
/// to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// The time in which the bucket gains one request.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second.max(1e-6))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// `/api/query`: a query is cancelled after this long.
    pub query_timeout: Duration,
    /// `/api/query`: queries running at once; more get 429.
    pub query_concurrency: usize,
    /// `/api/query`: how long a query waits for a free slot before the 429.
    /// A client that retries at once after each refusal is answered at the
    /// pace slots free up, not as fast as the server can say no: refusals
    /// at thousands per second took the CPU `/predict` needed.
    pub query_queue_wait: Duration,
    /// `/api/query`: bytes of JSON rows returned at most; the result is cut
    /// there and `truncated` says why.
    pub query_max_bytes: usize,
    /// `/api/stream`: open dashboard streams; more get 503.
    pub sse_subscribers: usize,
    /// A connection that has not sent a complete request head within this
    /// long (idle between requests included) is closed.
    pub header_read_timeout: Duration,
    /// Every route but the stream: reading the body and answering must
    /// finish within this long (503 otherwise).
    pub request_timeout: Duration,
    /// On shutdown, connections still open after this long are dropped.
    pub shutdown_grace: Duration,
    /// `/predict`, `/predict/batch`, `/explain`, per client.
    pub model_rate: Rate,
    /// `/api/query`, per client.
    pub query_rate: Rate,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_secs(30),
            query_concurrency: 2,
            query_queue_wait: Duration::from_secs(1),
            query_max_bytes: 8 * 1024 * 1024,
            sse_subscribers: 64,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            model_rate: Rate {
                per_second: 1000.0,
                burst: 2000,
            },
            query_rate: Rate {
                per_second: 1.0,
                burst: 10,
            },
        }
    }
}
