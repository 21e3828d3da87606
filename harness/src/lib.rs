//! handshake-matrix: how many TLS handshakes does each browser burn before it shows a page
//! served with an untrusted certificate?
//!
//! The binary (`src/main.rs`) is a thin shell over this library:
//! - [`scenario`] parses `scenarios/*.toml` strictly;
//! - [`browser`] drives Chromium and Firefox through WebDriver, with every trust mode, one
//!   engine per module behind the [`browser::Browser`] trait;
//! - [`target`] is what a trial talks to: a server that records every connection;
//! - [`runner`] turns scenarios into cells and trials, runs them in parallel, attributes the
//!   target's connection records to steps, and tells its subscribers what happened;
//! - [`confirm`] measures the cells a diff flags again (`--confirm`);
//! - [`cli`] is the command line;
//! - [`scratch`] names a run's temporary folders after their owner, and removes those a killed
//!   run left.

pub mod browser;
pub mod cli;
pub mod confirm;
pub mod netlog;
pub mod process;
pub mod progress;
pub mod runner;
pub mod scenario;
pub mod scratch;
pub mod target;
pub mod timing;
