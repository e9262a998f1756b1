//! `exchange-gateway`: a requester department's HTTP/1.1 + JSON gateway to the federation.
//!
//! Run beside a department's legacy systems (like X-Road's security server on the consumer
//! side), it holds the department's certificate and keys and offers on a local address the
//! queries (get, verify and list licences; get and match records), consent recording and
//! consent tokens, and the department's own audit view. It does the mutual TLS, verifies
//! every node signature before it answers, and returns each answer with the verification
//! result and the signed digest, so that the calling system can keep the evidence.
//!
//! - JSON is the proto3 JSON mapping of the `exchange.v1` messages (generated with pbjson):
//!   camelCase names, enums by name, 64-bit integers as strings, bytes as base64.
//! - Calling systems authenticate with a bearer token each ([`config::CallerConfig`]); the
//!   gateway keeps only the tokens' SHA-256. Every call carries the calling system's name
//!   into the trace id, so the central log says which system asked.
//! - Errors carry the gRPC code, the reason code and the request field ([`error::ApiError`]).
//! - `GET /openapi.json` serves the OpenAPI document of the API.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod openapi;

pub use api::{GatewayState, router};
pub use config::GatewayConfig;
