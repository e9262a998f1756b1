"""The batch forms against a real federation: every item answered on its own and verified
against its own question, a refused item carrying its code and reason while the others are
answered, and batch answers tampered with (a value, a signature, the order, the count)
refused whole by the client."""

import pytest

from exchange_client import ExchangeError, Refused, Verified, VerificationError, face_scan_consent, node_pb2, person

HCB, PSB = "gov.sz.hcb", "gov.sz.psb"
POPULATION = "gov.sz.psb/population"
RENTAL = "SZ-HCB-ZLBA-001"


@pytest.fixture(scope="module")
def tokens(client, landlord, tenant):
    """A population consent token of the landlord and of the tenant (name and status)."""
    out = {}
    for role, who in (("landlord", landlord), ("tenant", tenant)):
        consent = client.record_consent(
            face_scan_consent(who["id"], HCB, {POPULATION: ["name", "status"]}, RENTAL, f"PY-BATCH-{role}")
        )
        out[who["id"]] = client.consent_token(consent.id, POPULATION)
    return out


def batch(items, trace):
    """A BatchGetRecords of (resident id, fields, token) items."""
    return node_pb2.BatchGetRecordsRequest(
        context={"purpose_code": RENTAL, "reason": "rental filing", "trace_id": trace},
        dataset=POPULATION,
        items=[node_pb2.RecordItem(subject=person(i), fields=list(f), consent_token=t) for i, f, t in items],
    )


def copy(answer):
    out = node_pb2.BatchRecordAnswer()
    out.CopyFrom(answer)
    return out


def test_a_batch_is_answered_per_item_each_verified(client, landlord, tenant, tokens):
    request = batch(
        [
            (landlord["id"], ["status", "name"], tokens[landlord["id"]]),
            (tenant["id"], ["name"], tokens[tenant["id"]]),
        ],
        "py-batch",
    )
    results = client.batch("BatchGetRecords", request)
    assert len(results) == 2 and all(isinstance(r, Verified) for r in results), results
    first, second = (r.answer for r in results)
    assert [r.node for r in results] == [PSB, PSB]
    assert first.record.subject.id == landlord["id"] and second.record.subject.id == tenant["id"]
    assert [(f.name, f.value) for f in first.record.fields] == [
        ("name", landlord["name"]), ("status", landlord["status"])
    ]
    assert [(f.name, f.value) for f in second.record.fields] == [("name", tenant["name"])]
    # Each item is its own signed answer, with its own question, digest and log entry.
    assert list(first.question.fields) == ["name", "status"] and list(second.question.fields) == ["name"]
    assert results[0].digest != results[1].digest
    assert [r.digest for r in results] == [bytes(a.signature.digest) for a in (first, second)]
    assert first.header.log_sequence != second.header.log_sequence
    with pytest.raises(ExchangeError, match="not a batch form"):
        client.batch("GetRecord", request)


def test_a_refused_item_carries_its_reason_while_the_others_answer(client, landlord, tenant, tokens):
    request = batch(
        [
            (landlord["id"], ["name"], tokens[landlord["id"]]),
            (landlord["id"], ["name", "birth_date"], tokens[landlord["id"]]),
            (tenant["id"], ["status"], tokens[tenant["id"]]),
        ],
        "py-batch-refused",
    )
    results = client.batch("BatchGetRecords", request)
    assert len(results) == 3
    assert isinstance(results[0], Verified) and isinstance(results[2], Verified), results
    assert results[0].answer.record.fields[0].value == landlord["name"]
    assert results[2].answer.record.fields[0].value == tenant["status"]
    refused = results[1]
    assert isinstance(refused, Refused), refused
    assert refused.code.name == "PERMISSION_DENIED"
    assert refused.reason == "FIELD_NOT_GRANTED"
    assert "birth_date" in refused.message and landlord["id"] not in refused.message


def test_a_tampered_batch_answer_is_refused(client, landlord, tenant, tokens):
    request = batch(
        [
            (landlord["id"], ["name"], tokens[landlord["id"]]),
            (tenant["id"], ["name"], tokens[tenant["id"]]),
        ],
        "py-batch-tamper",
    )
    raw = client.raw_query("BatchGetRecords", request)
    assert all(isinstance(r, Verified) for r in client.verify_batch(request, raw))  # the genuine answer verifies

    altered = copy(raw)
    value = bytearray(altered.items[1].answer.record.fields[0].value.encode())
    value[0] ^= 0x01
    altered.items[1].answer.record.fields[0].value = value.decode()
    with pytest.raises(VerificationError, match=r"batch item 1: .*the answer was altered"):
        client.verify_batch(request, altered)

    forged = copy(raw)
    signature = bytearray(forged.items[0].answer.signature.signature)
    signature[-1] ^= 0x01
    forged.items[0].answer.signature.signature = bytes(signature)
    with pytest.raises(VerificationError, match=r"batch item 0: .*does not verify under the node's key"):
        client.verify_batch(request, forged)

    # Genuine items in another order: each answers another item's question.
    swapped = node_pb2.BatchRecordAnswer(items=[raw.items[1], raw.items[0]])
    with pytest.raises(VerificationError, match=r"batch item 0: .*another question than the one asked \(subject\)"):
        client.verify_batch(request, swapped)

    dropped = node_pb2.BatchRecordAnswer(items=[raw.items[0]])
    with pytest.raises(VerificationError, match="holds 1 items for 2 asked"):
        client.verify_batch(request, dropped)

    emptied = copy(raw)
    emptied.items[1].ClearField("answer")
    with pytest.raises(VerificationError, match="batch item 1 .* is OK but carries no answer"):
        client.verify_batch(request, emptied)
