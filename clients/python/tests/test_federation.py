"""The Python client against a real federation: the rental filing scenario, a refusal with
its reason, and answers with a tampered byte refused by the client's verifier."""

import pytest

from exchange_client import (
    Refused, VerificationError, catalog_pb2, face_scan_consent, node_pb2, organisation, person, verify_answer,
    verify_federation_config,
)

HCB, PSB, GSC, AMR = "gov.sz.hcb", "gov.sz.psb", "gov.sz.ft.gsc", "gov.sz.amr"
BUSINESS_LICENCE = "gov.sz.amr/business-licence"
OPENING = "SZ-FT-KBQY-001"
POPULATION = "gov.sz.psb/population"
PNR = "gov.sz.pnr"
PROPERTY = "gov.sz.pnr/property-certificate"
RENTAL = "SZ-HCB-ZLBA-001"


@pytest.fixture(scope="module")
def token(client, landlord):
    consent = client.record_consent(
        face_scan_consent(landlord["id"], HCB, {POPULATION: ["name", "status"]}, RENTAL, "PY-RENTAL")
    )
    assert consent.id and consent.requester == HCB
    return client.consent_token(consent.id, POPULATION)


def record_request(landlord, token, fields=("name", "status"), trace="py-rental"):
    return node_pb2.GetRecordRequest(
        context={"purpose_code": RENTAL, "reason": "rental filing", "trace_id": trace},
        dataset=POPULATION, subject=person(landlord["id"]), fields=list(fields), consent_token=token,
    )


def test_the_federation_configuration_is_verified_against_the_pinned_key(client):
    view = client.federation()
    assert client.dept_id == HCB
    psb = view.node(PSB)
    assert psb is not None and psb.endpoint.startswith("https://") and psb.key is not None
    signed = client.catalog.GetFederationConfig(catalog_pb2.GetFederationConfigRequest(), timeout=10)
    body = bytearray(signed.body)
    body[len(body) // 2] ^= 0x01
    signed.body = bytes(body)
    with pytest.raises(VerificationError, match="does not verify under the pinned catalog key"):
        verify_federation_config(signed, client.profile.catalog_key)


def test_rental_filing_reads_the_landlords_record_verified(client, landlord, token):
    verified = client.get_record(
        POPULATION, person(landlord["id"]), ["status", "name"], RENTAL, "rental filing", token, "py-rental-1"
    )
    assert verified.node == PSB and len(verified.digest) == 32
    answer = verified.answer
    assert (answer.header.node, answer.header.requester, answer.header.dataset) == (PSB, HCB, POPULATION)
    got = [(f.name, f.value) for f in answer.record.fields]
    assert got == [("name", landlord["name"]), ("status", landlord["status"])]
    assert verified.digest == answer.signature.digest


def test_a_match_compares_without_revealing(client, landlord, token):
    verified = client.match_record(
        POPULATION, person(landlord["id"]), {"name": landlord["name"]}, RENTAL, "rental filing", token, "py-match"
    )
    assert [(m.name, node_pb2.MatchResult.Name(m.result)) for m in verified.answer.matches] == [
        ("name", "MATCH_RESULT_MATCH")
    ]
    wrong = client.match_record(
        POPULATION, person(landlord["id"]), {"name": landlord["name"] + "x"}, RENTAL, "rental filing", token, "py-match"
    )
    assert [node_pb2.MatchResult.Name(m.result) for m in wrong.answer.matches] == ["MATCH_RESULT_NO_MATCH"]


def test_a_field_beyond_the_grant_is_refused_with_its_reason(client, landlord, token):
    with pytest.raises(Refused) as refused:
        client.get_record(
            POPULATION, person(landlord["id"]), ["name", "birth_date"], RENTAL, "rental filing", token, "py-beyond"
        )
    r = refused.value
    assert r.code.name == "PERMISSION_DENIED"
    assert r.reason == "FIELD_NOT_GRANTED"
    assert "birth_date" in r.message and landlord["id"] not in r.message


def test_without_a_consent_token_the_node_refuses(client, landlord):
    with pytest.raises(Refused) as refused:
        client.get_record(POPULATION, person(landlord["id"]), ["name"], RENTAL, "rental filing", "", "py-no-token")
    assert refused.value.code.name in ("PERMISSION_DENIED", "UNAUTHENTICATED")
    assert refused.value.reason is not None and refused.value.reason != "UNSPECIFIED"


def test_every_tampered_byte_of_a_genuine_answer_is_refused(client, landlord, token):
    request = record_request(landlord, token, trace="py-tamper")
    raw = client.raw_query("GetRecord", request)
    expected, key = client.expected(request), client.node_key(POPULATION)
    verify_answer(raw, expected, key)  # the genuine answer verifies
    wire = raw.SerializeToString()
    refused = 0
    for i in range(len(wire)):
        tampered = bytearray(wire)
        tampered[i] ^= 0x01
        answer = node_pb2.RecordAnswer()
        try:
            answer.ParseFromString(bytes(tampered))
        except Exception:  # not even a RecordAnswer any more
            refused += 1
            continue
        with pytest.raises(VerificationError):
            verify_answer(answer, expected, key)
        refused += 1
    assert refused == len(wire)


def test_a_tampered_value_is_refused_with_a_clear_reason(client, landlord, token):
    request = record_request(landlord, token, trace="py-tamper-value")
    raw = client.raw_query("GetRecord", request)
    expected, key = client.expected(request), client.node_key(POPULATION)
    value = bytearray(raw.record.fields[1].value.encode())
    value[0] ^= 0x01
    raw.record.fields[1].value = value.decode()
    with pytest.raises(VerificationError, match="digest does not match its content: the answer was altered"):
        verify_answer(raw, expected, key)


def test_a_genuine_answer_to_another_question_is_refused(client, landlord, token):
    request = record_request(landlord, token, trace="py-other")
    raw = client.raw_query("GetRecord", request)
    other = record_request(landlord, token, fields=("name",))
    with pytest.raises(VerificationError, match=r"another question than the one asked \(fields\)"):
        verify_answer(raw, client.expected(other), client.node_key(POPULATION))


def test_business_opening_verifies_a_licence_with_the_least_data(service_centre, company):
    consent = service_centre.record_consent(face_scan_consent(
        organisation(company["code"]), GSC, {BUSINESS_LICENCE: ["licence_no", "credit_code", "entity_name", "status"]},
        OPENING, "PY-OPENING",
    ))
    token = service_centre.consent_token(consent.id, BUSINESS_LICENCE)
    verified = service_centre.verify_licence(
        BUSINESS_LICENCE, company["licence"], OPENING, "business opening", holder=organisation(company["code"]),
        consent_token=token, trace_id="py-verify",
    )
    assert verified.node == AMR
    answer = verified.answer
    assert node_pb2.Verdict.Name(answer.verdict) == "VERDICT_VALID"
    assert answer.version >= 1 and list(answer.fields) == []
    assert answer.question.licence_id == company["licence"]
    assert answer.question.claimed_holder.id == company["code"]


def test_the_landlords_certificate_by_number_and_by_holder(client, landlord):
    """GetLicence by the certificate's number and ListLicences by its holder, both verified:
    the rental filing's check that the lessor holds the flat."""
    fields = ["cert_no", "holder_id", "address", "area"]
    consent = client.record_consent(face_scan_consent(landlord["id"], HCB, {PROPERTY: fields}, RENTAL, "PY-PROPERTY"))
    token = client.consent_token(consent.id, PROPERTY)
    context = {"purpose_code": RENTAL, "reason": "rental filing", "trace_id": "py-property"}
    cert_no = landlord["cert_no"]
    got = client.query("GetLicence", node_pb2.GetLicenceRequest(
        context=context, dataset=PROPERTY, licence_id=cert_no, fields=fields, consent_token=token))
    assert got.node == PNR and got.answer.licence.licence_id == cert_no
    values = {f.name: f.value for f in got.answer.licence.fields}
    assert values["holder_id"] == landlord["id"] and values["cert_no"] == cert_no
    listed = client.query("ListLicences", node_pb2.ListLicencesRequest(
        context=context, dataset=PROPERTY, holder=person(landlord["id"]), fields=fields, consent_token=token))
    assert cert_no in [lic.licence_id for lic in listed.answer.licences]
    # The same answer presented for another certificate number is refused by the verifier.
    other = node_pb2.GetLicenceRequest(
        context=context, dataset=PROPERTY, licence_id=cert_no + "9", fields=fields, consent_token=token)
    with pytest.raises(VerificationError):
        verify_answer(got.answer, client.expected(other), client.node_key(PROPERTY))
