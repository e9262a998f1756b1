//! `exchange ca`: the federation CA and department certificates.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use exchange_pki::{CA_STEM, CertKind, CertSpec, FederationCa};
use serde_json::json;

use crate::render::Out;

/// CA commands.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a new federation CA: writes `<dir>/ca.crt` and `<dir>/ca.key` (keep it offline).
    Init {
        /// Where to write the CA.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name (certificate subject CN).
        #[arg(long, default_value = "Exchange Federation CA")]
        name: String,
    },
    /// Issue a department certificate (SAN URI `urn:exchange:dept:<id>`) with a new key.
    Issue {
        /// The CA directory (`ca.crt`, `ca.key`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The department id, e.g. `gov.sz.psb`.
        #[arg(long)]
        dept: String,
        /// What the certificate is for: `server` (a daemon), `client` (an SDK caller) or
        /// `both` (a node: it serves and calls the catalog).
        #[arg(long, value_parser = ["server", "client", "both"])]
        kind: String,
        /// DNS names the server answers to.
        #[arg(long, value_name = "NAME")]
        dns: Vec<String>,
        /// IP addresses the server answers to.
        #[arg(long, value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// Add the loopback names (`localhost`, `127.0.0.1`, `::1`).
        #[arg(long)]
        loopback: bool,
        /// Validity in days.
        #[arg(long, default_value_t = exchange_pki::DEFAULT_VALID_DAYS)]
        days: u32,
        /// Where to write `<stem>.crt`, `<stem>.key` and a copy of `ca.crt`.
        #[arg(long)]
        out: PathBuf,
        /// The file stem (default: the department id).
        #[arg(long)]
        stem: Option<String>,
    },
}

/// Runs a CA command.
pub fn run(command: CaCommand, out: Out) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { dir, name } => {
            let ca = FederationCa::generate(&name).context("generate the CA")?;
            let paths = ca.write_files(&dir, CA_STEM).context("write the CA")?;
            out.show(&json!({
                "certificate": paths.cert.display().to_string(),
                "key": paths.key.display().to_string(),
                "fingerprint": hex::encode(ca.fingerprint()),
            }));
            Ok(())
        }
        CaCommand::Issue { ca_dir, dept, kind, dns, ip, loopback, days, out: dir, stem } => {
            let ca = FederationCa::load_from_dir(&ca_dir).context("load the CA")?;
            let kind: CertKind = kind.parse().context("setting --kind")?;
            let mut spec = CertSpec::new(dept.clone(), kind).with_valid_days(days);
            if loopback {
                spec = spec.with_loopback();
            }
            for d in dns {
                spec = spec.with_dns(d);
            }
            for a in ip {
                spec = spec.with_ip(a);
            }
            let issued = ca.issue(&spec).context("issue the certificate")?;
            let stem = stem.unwrap_or_else(|| dept.clone());
            let paths = issued.write_files(&dir, &stem).context("write the certificate")?;
            let ca_copy = dir.join(format!("{CA_STEM}.crt"));
            if !ca_copy.exists() {
                std::fs::write(&ca_copy, ca.cert_pem()).with_context(|| format!("write {}", ca_copy.display()))?;
            }
            out.show(&json!({
                "dept_id": dept,
                "kind": kind.to_string(),
                "certificate": paths.cert.display().to_string(),
                "key": paths.key.display().to_string(),
                "ca_certificate": ca_copy.display().to_string(),
                "fingerprint": issued.fingerprint_hex(),
            }));
            Ok(())
        }
    }
}
