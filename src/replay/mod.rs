//! `make replay`: what the failure stores hold, the backed-up documents written back (`backup`), and the report. The
//! `replay` binary (`src/bin/replay.rs`) does the I/O: it lists and reads the bucket, reads a batch back from the
//! stream, and runs each batch and backup object through the handler and `backup::replay` (locally) or the deployed
//! function (`--remote`, where `main.rs` answers a replay event with `backup::replay`).
//!
//! Three stores, one bucket listing: Lambda's on-failure records (`on_failure`), Firehose's backup objects and the
//! function's dead letter, which share Firehose's format (`backup_object`). `remote` is what the remote mode makes of
//! the function's answers; `report` prints one line per object and the totals; `options` reads the command line.

pub mod backup;
pub mod backup_object;
pub mod on_failure;
pub mod options;
pub mod remote;
pub mod report;
