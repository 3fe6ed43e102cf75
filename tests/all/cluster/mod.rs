//! A cluster of engines (issue 9; docs/api.md "A cluster of engines"): several engine processes on
//! free ports share one Redis sentinel set of the test's own (the journal, leases and fencing
//! epochs) and one MariaDB database (the store), and serve as one. The tests drive real clients
//! through every node, break nodes the ways production does (SIGKILL, SIGSTOP past the lease then
//! SIGCONT, SIGTERM, a Redis primary failover during a takeover, bad input on the node-to-node
//! route, a node restarted under its own id), and hold every acknowledgement against the final
//! record in MariaDB.
//!
//! One scenario per file; `setup` starts the pieces, `voters` and `watchers` are the clients,
//! `record` is the final-record check.

mod admin;
mod closed_lease_left;
mod closed_while_away;
mod create_once;
mod handoff;
mod internal_bad_input;
mod kill;
mod large_sync;
mod local_dir;
mod record;
mod redis_failover;
mod restart;
mod setup;
mod slow_store;
mod two_nodes;
mod voters;
mod watchers;
mod zombie;
