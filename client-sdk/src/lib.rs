//! The Rust SDK of the Exchange federation, for department systems.
//!
//! A department system builds an [`ExchangeClient`] from its mTLS identity and the catalog's
//! address and pinned public key. The client learns node endpoints and node keys from the
//! federation configuration, which it verifies with the pinned key; it verifies the
//! signature of every node answer before returning it ([`Verified`]); it puts a deadline on
//! every call and retries only where a retry is safe; and it reports every failure as one
//! [`Error`] whose variants say what went wrong.
//!
//! ```no_run
//! use exchange_client_sdk::{ClientConfig, ClientIdentity, ExchangeClient, config::read_public_key};
//! use exchange_proto::v1::{GetRecordRequest, QueryContext, Subject, SubjectKind};
//! use exchange_pki::TlsFiles;
//!
//! # async fn run() -> exchange_client_sdk::Result<()> {
//! let identity = ClientIdentity::load(&TlsFiles::in_dir("tls", "gov.sz.hcb"))?;
//! let key = read_public_key("catalog.pub")?;
//! let client = ExchangeClient::connect(ClientConfig::new(identity, "https://127.0.0.1:7400", "localhost", "gov.sz.exchange", key)).await?;
//! let answer = client
//!     .get_record(GetRecordRequest {
//!         context: Some(QueryContext { purpose_code: "SZ-HCB-ZLBA-001".into(), reason: "filing 1".into(), trace_id: String::new() }),
//!         dataset: "gov.sz.psb/population".into(),
//!         subject: Some(Subject { kind: SubjectKind::Person as i32, id: "11010519491231002X".into() }),
//!         fields: vec![],
//!         consent_token: String::new(),
//!         version: 0,
//!     })
//!     .await?;
//! println!("verified answer signed by {}", answer.node());
//! # Ok(()) }
//! ```
//!
//! See `examples/rental_filing.rs` for a whole application: consent, tokens, a fan-out to
//! two providers, verification and the decision. To try it against real daemons on one
//! machine, the `exchange-localnet` crate starts a catalog and nodes on loopback
//! (`exchange demo` runs on it).
//!
//! This crate is the library alone: what a department system links. The `exchange` command
//! line is the `exchange-cli` crate and the local launcher `exchange-localnet`, so their
//! command-line, progress-bar, CSV and error-reporting dependencies stay out of a department
//! system's build (`scripts/tests/sdk-deps.sh` checks it).
//!
//! # Features
//!
//! - `profile` (off by default): [`profile::Profile`], the TOML connection profile that the
//!   `exchange` command line and the HTTP gateway read, so both take one file format. It is
//!   a feature rather than a module of its own crate because it builds a [`ClientConfig`]
//!   and is worth having in any system that keeps its settings in files; it is off because a
//!   system that configures the client in code, or in its own configuration format, should
//!   not compile a TOML parser for it.

pub mod client;
pub mod config;
pub mod error;
pub mod log;
pub mod node;
#[cfg(feature = "profile")]
pub mod profile;
pub mod verify;

pub use client::ExchangeClient;
pub use config::{ClientConfig, ClientIdentity, RetryPolicy};
pub use error::{Error, Result};
pub use node::{NodeAnswer, NodeQuery};
pub use verify::Verified;
