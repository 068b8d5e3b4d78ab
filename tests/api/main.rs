//! Black-box tests of the HTTP service: a real server on port 0, talked to over a real socket.
//!
//! In-process servers (`helpers::spawn_app`) for the HTTP contract; the real binary as a child
//! process (`crash.rs`) for kill -9 and SIGTERM; PostgreSQL against SQLite (`postgres.rs`), and
//! an API node with worker processes on one PostgreSQL database (`scaleout.rs`).

mod bounds;
mod browser;
mod compare;
mod crash;
mod errors;
mod features;
mod figures;
mod geometry;
mod helpers;
mod jobs;
mod lab;
mod labels;
mod lifecycle;
mod pages;
mod postgres;
mod process;
mod residual;
mod results;
mod samples;
mod scaleout;
mod search;
mod structure;
mod worst_case;
