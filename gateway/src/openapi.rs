//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.

use serde_json::{Value, json};

/// A `POST` operation taking `request` and answering `ok` (a 200 response object).
fn op(summary: &str, request: &str, ok: Value) -> Value {
    json!({
        "post": {
            "summary": summary,
            "security": [{ "bearer": [] }],
            "requestBody": { "required": true, "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{request}") } } } },
            "responses": { "200": ok, "default": { "$ref": "#/components/responses/Error" } }
        }
    })
}

/// A query form: answered with the verified answer and its evidence.
fn query_op(summary: &str, request: &str) -> Value {
    let ok = json!({ "description": "the answer, its node signature verified",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/VerifiedAnswer" } } } });
    op(summary, request, ok)
}

/// A batch form: each item answered with evidence, or refused with its own error.
fn batch_op(summary: &str, request: &str) -> Value {
    let ok = json!({ "description": "the items in order: each a VerifiedAnswer or an {\"error\": ...} object",
        "content": { "application/json": { "schema": { "type": "object", "properties": { "items": {
            "type": "array", "items": { "oneOf": [ { "$ref": "#/components/schemas/VerifiedAnswer" },
                                                   { "$ref": "#/components/schemas/Error" } ] } } } } } } });
    op(summary, request, ok)
}

/// A call answered with a message of the catalog.
fn plain_op(summary: &str, request: &str, response: &str) -> Value {
    let ok = json!({ "description": response, "content": { "application/json": { "schema": { "type": "object" } } } });
    op(summary, request, ok)
}

/// A request message of `exchange.v1`, in the proto3 JSON mapping.
fn message(name: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("exchange.v1.{name} in the proto3 JSON mapping (camelCase fields, enums by name, \
                                64-bit integers as strings); see proto/exchange/v1/ for every field"),
        "additionalProperties": true
    })
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Exchange gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A requester department's HTTP/JSON access to the Exchange federation. \
                            Every answer's node signature is verified before it is returned."
        },
        "paths": {
            "/v1/records/get": query_op("Get a base record (GetRecord)", "GetRecordRequest"),
            "/v1/records/match": query_op("Match claimed values against a record (MatchRecord)", "MatchRecordRequest"),
            "/v1/licences/get": query_op("Get a licence (GetLicence)", "GetLicenceRequest"),
            "/v1/licences/verify": query_op("Verify a licence: a verdict (VerifyLicence)", "VerifyLicenceRequest"),
            "/v1/licences/list": query_op("List a holder's licences (ListLicences)", "ListLicencesRequest"),
            "/v1/records/batch-get": batch_op("Get several base records (BatchGetRecords)", "BatchGetRecordsRequest"),
            "/v1/records/batch-match": batch_op("Match several claims (BatchMatchRecords)", "BatchMatchRecordsRequest"),
            "/v1/licences/batch-get": batch_op("Get several licences (BatchGetLicences)", "BatchGetLicencesRequest"),
            "/v1/licences/batch-verify": batch_op("Verify several licences (BatchVerifyLicences)", "BatchVerifyLicencesRequest"),
            "/v1/licences/batch-list": batch_op("List several holders' licences (BatchListLicences)", "BatchListLicencesRequest"),
            "/v1/consents": plain_op("Record a subject's consent (RecordConsent)", "RecordConsentRequest", "the consent"),
            "/v1/consent-tokens": plain_op("A consent token for one dataset (IssueConsentToken)", "TokenRequest", "the token"),
            "/v1/audit/query": plain_op("The department's own audit view (QueryAccessLog)", "QueryAccessLogRequest", "entries"),
            "/healthz": { "get": { "summary": "liveness", "responses": { "200": { "description": "ok" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "one token per calling system (exchange-gateway caller-token)" } },
            "schemas": {
                "GetRecordRequest": message("GetRecordRequest"),
                "MatchRecordRequest": message("MatchRecordRequest"),
                "GetLicenceRequest": message("GetLicenceRequest"),
                "VerifyLicenceRequest": message("VerifyLicenceRequest"),
                "ListLicencesRequest": message("ListLicencesRequest"),
                "RecordConsentRequest": message("RecordConsentRequest"),
                "QueryAccessLogRequest": message("QueryAccessLogRequest"),
                "BatchGetRecordsRequest": message("BatchGetRecordsRequest"),
                "BatchMatchRecordsRequest": message("BatchMatchRecordsRequest"),
                "BatchGetLicencesRequest": message("BatchGetLicencesRequest"),
                "BatchVerifyLicencesRequest": message("BatchVerifyLicencesRequest"),
                "BatchListLicencesRequest": message("BatchListLicencesRequest"),
                "TokenRequest": { "type": "object", "required": ["consentId", "dataset"],
                    "properties": { "consentId": { "type": "string" }, "dataset": { "type": "string" } },
                    "additionalProperties": false },
                "VerifiedAnswer": { "type": "object", "required": ["node", "verified", "keyId", "signedDigest", "answer"],
                    "properties": {
                        "node": { "type": "string", "description": "the department whose node signed the answer" },
                        "verified": { "type": "boolean", "const": true },
                        "keyId": { "type": "string", "description": "the id of the node key that signed it" },
                        "signedDigest": { "type": "string", "description": "hex of the signed canonical digest (also in the access log)" },
                        "answer": { "type": "object", "description": "the answer message in the proto3 JSON mapping" }
                    } },
                "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                    "type": "object", "required": ["kind", "code", "grpcCode", "reason", "message"],
                    "properties": {
                        "kind": { "type": "string", "enum": ["refused", "unavailable", "upstream", "bad_signature", "invalid_request", "unauthenticated"] },
                        "code": { "type": "string", "description": "gRPC status code name" },
                        "grpcCode": { "type": "integer" },
                        "reason": { "type": "string", "description": "exchange.v1.ReasonCode name without its prefix" },
                        "field": { "type": "string" },
                        "message": { "type": "string" },
                        "retryAfterMs": { "type": "integer" }
                    } } } }
            },
            "responses": { "Error": { "description": "a refusal or failure, with its gRPC code and reason",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
        }
    })
}
