//! The demo federation of Shenzhen: its members, datasets and standard schemas, and a
//! reproducible population of citizens and companies, consistent across departments (every
//! company's legal representative and every property holder is a citizen of the population
//! base), with valid resident IDs and credit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use exchange_core::ident::{CreditCode, ResidentId};
use exchange_proto::v1::{
    ConsentChannel, ConsentEvidence, ConsentMethod, ConsentScope, ImportChunk, ImportFormat, ImportHeader,
    ImportRecord, RecordConsentRequest, Role, Subject, SubjectKind,
};

use super::{DatasetSpec, LocalnetOptions, MemberSpec};

/// The operator of the demo federation.
pub const OPS: &str = "gov.sz.ops";
/// Public security: the population base (人口基础库).
pub const PSB: &str = "gov.sz.psb";
/// Market regulation: business licences (营业执照).
pub const AMR: &str = "gov.sz.amr";
/// Planning and natural resources: real-property certificates (不动产权证书).
pub const PNR: &str = "gov.sz.pnr";
/// The housing bureau: rental filings (requester and portal).
pub const HCB: &str = "gov.sz.hcb";
/// The Futian district service centre: business opening (requester and portal).
pub const GSC: &str = "gov.sz.ft.gsc";
/// The auditor.
pub const AUDIT: &str = "gov.sz.audit";
/// The purpose code of rental registration filing (房屋租赁登记备案).
pub const RENTAL: &str = "SZ-HCB-ZLBA-001";
/// The purpose code of business opening (开办企业).
pub const OPENING: &str = "SZ-FT-KBQY-001";
/// The population dataset.
pub const POPULATION: &str = "gov.sz.psb/population";
/// The business-licence dataset.
pub const BUSINESS_LICENCE: &str = "gov.sz.amr/business-licence";
/// The property-certificate dataset.
pub const PROPERTY_CERTIFICATE: &str = "gov.sz.pnr/property-certificate";

/// The standard schemas of `deploy/schemas/`.
pub const SCHEMAS: [&str; 3] = [
    include_str!("../../deploy/schemas/population.json"),
    include_str!("../../deploy/schemas/business-licence.json"),
    include_str!("../../deploy/schemas/property-certificate.json"),
];

/// One record as field name → text, ready for import.
pub type Row = BTreeMap<String, String>;

/// The generated data set.
#[derive(Debug, Default)]
pub struct DemoData {
    /// Population records (`std.record.population@1`).
    pub persons: Vec<Row>,
    /// Business licences (`std.licence.business@1`).
    pub businesses: Vec<Row>,
    /// Real-property certificates (`std.licence.property@1`).
    pub properties: Vec<Row>,
}

/// A member with its roles and its node's datasets (none: no node).
pub fn member(dept: &str, name: &str, roles: &[Role], datasets: Vec<DatasetSpec>) -> MemberSpec {
    MemberSpec { dept_id: dept.into(), name: name.into(), roles: roles.to_vec(), datasets }
}

fn dataset(id: &str, kind: &str, schema: &str, legal_basis: &str, zh: &str) -> Vec<DatasetSpec> {
    vec![DatasetSpec {
        id: id.into(),
        kind: kind.into(),
        schema: schema.into(),
        legal_basis: legal_basis.into(),
        description_zh: zh.into(),
    }]
}

/// The demo federation's members: three providers, two requesters (with portals that
/// record citizens' consent) and an auditor; the operator registers them.
pub fn members() -> Vec<MemberSpec> {
    use Role::{Auditor, Department, Portal};
    vec![
        member(
            PSB,
            "深圳市公安局 public security",
            &[Department],
            dataset(
                "gov.sz.psb/population",
                "record",
                "std.record.population@1",
                "《中华人民共和国居民身份证法》",
                "人口基础库",
            ),
        ),
        member(
            AMR,
            "深圳市市场监督管理局 market regulation",
            &[Department],
            dataset(
                BUSINESS_LICENCE,
                "licence",
                "std.licence.business@1",
                "《中华人民共和国市场主体登记管理条例》",
                "营业执照",
            ),
        ),
        member(
            PNR,
            "深圳市规划和自然资源局 natural resources",
            &[Department],
            dataset(
                "gov.sz.pnr/property-certificate",
                "licence",
                "std.licence.property@1",
                "《不动产登记暂行条例》",
                "不动产权证书",
            ),
        ),
        member(HCB, "深圳市住房和建设局 housing", &[Department, Portal], vec![]),
        member(GSC, "福田区政务服务中心 service centre", &[Department, Portal], vec![]),
        member(AUDIT, "审计监督 auditor", &[Auditor], vec![]),
    ]
}

/// The demo federation's options: its members, the standard schemas, deployment defaults.
pub fn federation(dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> LocalnetOptions {
    let mut options = LocalnetOptions::new(dir, bin_dir, member(OPS, "交换平台运维", &[Role::Operator], vec![]));
    options.members = members();
    options.schemas = SCHEMAS.map(String::from).to_vec();
    options
}

/// SplitMix64: a tiny deterministic generator, so the demo is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DISTRICTS: &[(&str, &str)] =
    &[("440303", "罗湖区"), ("440304", "福田区"), ("440305", "南山区"), ("440306", "宝安区"), ("440307", "龙岗区")];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗",
    "郑",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "华", "平", "刚",
    "桂英", "建国", "丽", "强", "军", "志强",
];
const ROADS: &[&str] =
    &["深南大道", "福华路", "益田路", "彩田路", "华强北路", "科技园路", "宝安大道", "龙岗大道", "莲花路", "景田路"];
const TRADES: &[&str] = &["科技", "贸易", "餐饮", "物流", "文化传媒", "建筑工程", "医疗器械", "电子", "咨询", "教育"];
const WORDS: &[&str] =
    &["华兴", "鹏程", "前海", "福源", "莲花", "新港", "瑞丰", "德信", "安泰", "海纳", "中联", "长盛"];
const ORG_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

fn person_name(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN))
}

fn address(rng: &mut Rng, district: &str) -> String {
    format!(
        "深圳市{district}{}{}号{}栋{}室",
        rng.pick(ROADS),
        1 + rng.below(300),
        1 + rng.below(20),
        101 + rng.below(30) * 100
    )
}

fn row(pairs: &[(&str, String)]) -> Row {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Generates `persons` citizens, one company per five citizens and one property per three.
pub fn generate(persons: usize) -> DemoData {
    let mut rng = Rng(20_261_123);
    let mut data = DemoData::default();
    let mut people: Vec<(String, String, String)> = Vec::with_capacity(persons); // (id, name, district)
    let mut seq_by_day: BTreeMap<(usize, u16, u8, u8), u16> = BTreeMap::new();
    while people.len() < persons {
        let d = rng.below(DISTRICTS.len() as u64) as usize;
        let (region, district) = DISTRICTS[d];
        let year = 1950 + rng.below(56) as u16;
        let month = 1 + rng.below(12) as u8;
        let day = 1 + rng.below(28) as u8;
        let seq = seq_by_day.entry((d, year, month, day)).or_insert(0);
        *seq += 1;
        if *seq > 999 {
            continue;
        }
        let Ok(id) = ResidentId::from_parts(region, year, month, day, *seq) else { continue };
        let name = person_name(&mut rng);
        let status = if rng.below(100) < 2 { "deceased" } else { "normal" };
        data.persons.push(row(&[
            ("id_number", id.as_str().to_string()),
            ("name", name.clone()),
            ("gender", if id.is_male() { "male" } else { "female" }.to_string()),
            ("birth_date", format!("{year:04}-{month:02}-{day:02}")),
            ("address", address(&mut rng, district)),
            ("household_type", if rng.below(4) == 0 { "rural" } else { "urban" }.to_string()),
            ("status", status.to_string()),
        ]));
        people.push((id.as_str().to_string(), name, district.to_string()));
    }
    for (i, (id, name, district)) in people.iter().enumerate() {
        if i % 5 == 0 {
            let region = DISTRICTS.iter().find(|(_, n)| n == district).map(|(r, _)| *r).unwrap_or("440304");
            let org: String =
                (0..9).map(|_| ORG_ALPHABET[rng.below(ORG_ALPHABET.len() as u64) as usize] as char).collect();
            let Ok(code) = CreditCode::from_parts('9', '1', region, &org) else { continue };
            let year = 2000 + rng.below(26);
            data.businesses.push(row(&[
                ("licence_no", format!("SZ-AMR-{year}-{:06}", i / 5 + 1)),
                ("credit_code", code.as_str().to_string()),
                ("entity_name", format!("深圳市{}{}有限公司", rng.pick(WORDS), rng.pick(TRADES))),
                ("legal_rep_name", name.clone()),
                ("legal_rep_id", id.clone()),
                ("reg_capital", format!("{}.00", (1 + rng.below(500)) * 10_000)),
                ("founded", format!("{year:04}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))),
                ("status", if rng.below(20) == 0 { "cancelled" } else { "active" }.to_string()),
            ]));
        }
        if i % 3 == 0 {
            let year = 1998 + rng.below(28);
            data.properties.push(row(&[
                ("cert_no", format!("YUE-{year}-SZ-{:07}", i / 3 + 1)),
                ("holder_id", id.clone()),
                ("holder_name", name.clone()),
                ("address", address(&mut rng, district)),
                ("area", format!("{}.{:02}", 30 + rng.below(170), rng.below(100))),
                ("use", if rng.below(10) == 0 { "commercial" } else { "residential" }.to_string()),
                ("registered", format!("{year:04}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))),
            ]));
        }
    }
    data
}

/// Records per import chunk.
const CHUNK: usize = 1000;

/// An import of `rows` into `dataset` as the SDK sends it: the header, then chunks of 1000
/// records numbered from line 1. `valid_from` names the field that gives a licence's
/// validity start, if any.
pub fn import_request(
    dataset: &str,
    import_id: &str,
    rows: &[Row],
    valid_from: Option<&str>,
) -> (ImportHeader, Vec<ImportChunk>) {
    let chunks = rows
        .chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| ImportChunk {
            records: (1u64..)
                .zip(chunk)
                .map(|(i, row)| ImportRecord {
                    line: (c * CHUNK) as u64 + i,
                    fields: row.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    valid_from: valid_from.and_then(|f| row.get(f).cloned()).unwrap_or_default(),
                    valid_until: String::new(),
                })
                .collect(),
        })
        .collect();
    let header = ImportHeader {
        dataset: dataset.into(),
        format: ImportFormat::JsonLines as i32,
        source_name: "generated".into(),
        import_id: import_id.into(),
    };
    (header, chunks)
}

/// What one consent covers in one dataset: the dataset and the fields of it consented to.
pub type Scope<'a> = (&'a str, &'a [&'a str]);

/// The consent a citizen gives by face scan in an online service, for a day: `subject`
/// (a resident id) lets `requester` read, in each scope's dataset, the scope's fields for
/// `purpose`, in the application `application`.
pub fn face_scan_consent(
    subject: &str,
    requester: &str,
    scopes: &[Scope<'_>],
    purpose: &str,
    application: &str,
) -> RecordConsentRequest {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    RecordConsentRequest {
        subject: Some(Subject { kind: SubjectKind::Person as i32, id: subject.into() }),
        requester: requester.into(),
        scopes: scopes
            .iter()
            .map(|(dataset, fields)| ConsentScope {
                dataset: dataset.to_string(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            })
            .collect(),
        purpose_code: purpose.into(),
        expires_at_unix_ms: now_ms + 24 * 3600 * 1000,
        evidence: Some(ConsentEvidence {
            method: ConsentMethod::FaceScan as i32,
            channel: ConsentChannel::Online as i32,
            reference: format!("face-{application}"),
        }),
        application_id: application.into(),
        ..Default::default()
    }
}
