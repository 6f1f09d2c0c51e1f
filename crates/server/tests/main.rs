//! The server's integration tests on the real services, linked into one test binary: each file of this folder is
//! a module here, and one libtest runs them all, two at a time (a file with a single test no longer runs it
//! alone). One binary instead of eighteen saves each run about 3 GB of disk and a link per file (every binary
//! links the whole server). `data_plane.rs`, which runs real JVM brokers for four minutes, keeps a binary of its
//! own so that nothing runs beside it.
//! One file's tests: `cargo test -p polaris-server --test server drift::`.

mod admin;
mod clients;
mod contract;
mod cross_org;
mod day2;
mod delivery;
mod drift;
mod grpc;
mod grpc_parity;
mod helm;
mod isolation;
mod mesh;
mod observability;
mod one_judgement;
mod provisioning;
mod stack;
mod topics;
mod walking_skeleton;
