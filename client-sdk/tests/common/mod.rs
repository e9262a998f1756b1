//! A catalog on 127.0.0.1 over mutual TLS, for the SDK and command-line tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_catalog::config::CatalogConfig;
use exchange_catalog::server::{RunningCatalog, start};
use exchange_client_sdk::{ClientConfig, ClientIdentity, ExchangeClient};
use exchange_core::ident::DeptId;
use exchange_pki::{CertKind, CertSpec, FederationCa, IssuedCert, LoadedIdentity, TlsFiles};
use exchange_proto::v1::{Member, Role};

/// The operator (and auditor) member the catalog starts with.
pub const OPS: &str = "gov.sz.ops";
/// The catalog's department id (its certificate names it).
pub const CATALOG_ID: &str = "gov.sz.exchange";
/// The log origin.
pub const ORIGIN: &str = "exchange.test/log";

pub const POPULATION_SCHEMA: &str = r#"{
  "reference": "std.record.population@1",
  "title_zh": "人口基础信息",
  "title_en": "Population record",
  "key_field": "id_number",
  "fields": [
    {"name": "id_number", "type": {"type": "resident_id"}, "required": true, "classification": "personal", "label_zh": "公民身份号码", "label_en": "Resident ID number"},
    {"name": "name", "type": {"type": "string", "max_len": 50}, "required": true, "classification": "personal", "label_zh": "姓名", "label_en": "Name"},
    {"name": "birth_date", "type": {"type": "date"}, "required": true, "classification": "personal", "label_zh": "出生日期", "label_en": "Date of birth"},
    {"name": "status", "type": {"type": "enum", "values": ["normal", "deceased"]}, "required": true, "classification": "internal", "label_zh": "人员状态", "label_en": "Status"}
  ]
}"#;

pub struct Federation {
    pub dir: tempfile::TempDir,
    pub ca: FederationCa,
    pub catalog: RunningCatalog,
    pub catalog_key: VerifyingKey,
    pub endpoint: String,
    /// One client certificate per department, issued on first use (members are registered
    /// with its fingerprint).
    certs: Mutex<BTreeMap<String, IssuedCert>>,
}

fn issue_client(ca: &FederationCa, dept: &str) -> IssuedCert {
    ca.issue(&CertSpec::new(dept, CertKind::Client)).expect("client cert")
}

impl Federation {
    pub async fn start() -> Federation {
        exchange_pki::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = FederationCa::generate("Test Federation CA").expect("CA");
        let server = ca.issue(&CertSpec::new(CATALOG_ID, CertKind::Server).with_loopback()).expect("server cert");
        let tls = LoadedIdentity::from_pem(ca.cert_pem(), &server.cert_pem, &server.key_pem).expect("server identity");
        let signing_key = SigningKey::from_bytes(&[42; 32]);
        let ops_cert = issue_client(&ca, OPS);
        let config = CatalogConfig {
            catalog_id: DeptId::parse(CATALOG_ID).expect("dept id"),
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().join("catalog"),
            log_origin: ORIGIN.into(),
            token_lifetime_secs: 300,
            config_heartbeat: std::time::Duration::from_secs(5),
            metrics_listen: None,
            tls,
            keys_dir: dir.path().join("keys"),
            keys: exchange_catalog::keys::CatalogKeys::new(
                signing_key.clone(),
                SigningKey::from_bytes(&[43; 32]),
                SigningKey::from_bytes(&[44; 32]),
                Vec::new(),
            )
            .expect("one key per purpose"),
            subject_digest_key: [7; 32],
            bootstrap_members: vec![Member {
                dept_id: OPS.into(),
                name: "Operations".into(),
                roles: vec![Role::Operator as i32, Role::Auditor as i32],
                cert_fingerprints: vec![ops_cert.fingerprint.to_vec()],
                ..Default::default()
            }],
        };
        let catalog = start(config).await.expect("start the catalog");
        let endpoint = format!("https://127.0.0.1:{}", catalog.addr.port());
        let certs = Mutex::new(BTreeMap::from([(OPS.to_string(), ops_cert)]));
        Federation { dir, ca, catalog, catalog_key: signing_key.verifying_key(), endpoint, certs }
    }

    /// The department's client certificate (the same one on every call).
    pub fn cert(&self, dept: &str) -> IssuedCert {
        let mut certs = self.certs.lock().expect("certificates");
        certs.entry(dept.to_string()).or_insert_with(|| issue_client(&self.ca, dept)).clone()
    }

    /// The fingerprint to register the department with.
    pub fn fingerprint(&self, dept: &str) -> Vec<u8> {
        self.cert(dept).fingerprint.to_vec()
    }

    pub fn identity(&self, dept: &str) -> ClientIdentity {
        let cert = self.cert(dept);
        ClientIdentity::from_pem(self.ca.cert_pem(), &cert.cert_pem, &cert.key_pem).expect("client identity")
    }

    /// Writes `<dir>/tls/<dept>.crt|.key` and `ca.crt`.
    pub fn write_identity(&self, dept: &str) -> TlsFiles {
        let dir = self.dir.path().join("tls");
        self.cert(dept).write_files(&dir, dept).expect("write cert");
        let ca = dir.join("ca.crt");
        if !ca.exists() {
            std::fs::write(&ca, self.ca.cert_pem()).expect("write ca");
        }
        TlsFiles::in_dir(&dir, dept)
    }

    pub async fn client(&self, dept: &str) -> ExchangeClient {
        let config =
            ClientConfig::new(self.identity(dept), self.endpoint.clone(), "localhost", CATALOG_ID, self.catalog_key);
        ExchangeClient::connect(config).await.expect("connect")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
