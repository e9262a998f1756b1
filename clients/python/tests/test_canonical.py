"""The canonical form, byte for byte: answers of every kind encoded by the Rust types, with
the canonical bytes the Rust implementation computes (``EXCHANGE_CANONICAL_VECTORS``), and
signature checks on a locally signed answer."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import env
from exchange_client import Expected, VerificationError, canonical_bytes, canonical_digest, key_id, node_pb2, person
from exchange_client.canonical import question_of


def vectors():
    with open(env("EXCHANGE_CANONICAL_VECTORS"), encoding="utf-8") as f:
        return json.load(f)


def test_canonical_bytes_match_the_rust_implementation():
    vs = vectors()
    assert {v["type"] for v in vs} == {
        "LicenceAnswer", "VerifyLicenceAnswer", "ListLicencesAnswer", "RecordAnswer", "MatchAnswer"
    }
    for v in vs:
        answer = getattr(node_pb2, v["type"])()
        answer.ParseFromString(bytes.fromhex(v["message"]))
        assert canonical_bytes(answer).hex() == v["canonical"], v["name"]
        assert canonical_digest(answer).hex() == v["digest"], v["name"]


def test_questions_match_the_rust_implementation():
    items = set()
    for v in vectors():
        if "request" not in v:
            continue
        request = getattr(node_pb2, v["request_type"])()
        request.ParseFromString(bytes.fromhex(v["request"]))
        assert question_of(request).SerializeToString().hex() == v["question"], v["name"]
        # The batch item of the same form (a batch item asks for no earlier version).
        item = getattr(node_pb2, v["item"]["type"])()
        item.ParseFromString(bytes.fromhex(v["item"]["message"]))
        assert question_of(item).SerializeToString().hex() == v["item"]["question"], v["item"]["type"]
        items.add(v["item"]["type"])
    assert items == {"LicenceItem", "VerifyItem", "HolderItem", "RecordItem", "MatchItem"}


def signed_answer(key):
    request = node_pb2.GetRecordRequest(dataset="gov.sz.psb/population", subject=person("11010519491231002X"),
                                        fields=["name", "address", "name"])
    answer = node_pb2.RecordAnswer(question=question_of(request))
    answer.header.node, answer.header.requester, answer.header.dataset = "gov.sz.psb", "gov.sz.hcb", request.dataset
    answer.record.subject.CopyFrom(request.subject)
    answer.record.fields.add(name="name", value="张三")
    digest = canonical_digest(answer)
    answer.signature.node, answer.signature.key_id = "gov.sz.psb", key_id(key.public_key())
    answer.signature.digest, answer.signature.signature = digest, key.sign(digest)
    return request, answer


def test_signatures_bind_the_signing_key_and_the_node():
    from exchange_client import verify_answer

    key = Ed25519PrivateKey.generate()
    request, answer = signed_answer(key)
    expected = Expected("gov.sz.psb", "gov.sz.hcb", request.dataset, question_of(request))
    assert verify_answer(answer, expected, key.public_key()).node == "gov.sz.psb"
    with pytest.raises(VerificationError, match="signed with key"):
        verify_answer(answer, expected, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError, match="header names requester"):
        verify_answer(answer, Expected("gov.sz.psb", "gov.sz.ca", request.dataset, expected.question), key.public_key())
    sig = bytearray(answer.signature.signature)
    sig[5] ^= 0x80
    answer.signature.signature = bytes(sig)
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_answer(answer, expected, key.public_key())
    answer.ClearField("signature")
    with pytest.raises(VerificationError, match="no signature"):
        verify_answer(answer, expected, key.public_key())


def test_during_a_rotation_an_answer_verifies_under_any_key_in_force_and_no_other():
    from exchange_client import verify_answer

    registered, published, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    request, answer = signed_answer(published)
    expected = Expected("gov.sz.psb", "gov.sz.hcb", request.dataset, question_of(request))
    in_force = [registered.public_key(), published.public_key()]
    assert verify_answer(answer, expected, in_force).node == "gov.sz.psb"
    with pytest.raises(VerificationError, match="signed with key"):
        verify_answer(answer, expected, [registered.public_key(), stranger.public_key()])
    # A forged signature cannot borrow another key in force: the key id picks the key.
    _, forged = signed_answer(stranger)
    forged.signature.key_id = answer.signature.key_id
    with pytest.raises(VerificationError):
        verify_answer(forged, expected, in_force)


def test_small_order_keys_and_points_are_refused_as_strict_ed25519_does():
    from exchange_client.verify import small_order

    identity = (1).to_bytes(32, "little")
    order_2 = (2**255 - 19 - 1).to_bytes(32, "little")
    order_4 = bytes(32)  # y = 0: x = ±sqrt(-1)
    for enc in (identity, order_2, order_4, bytes(31) + b"\x80"):
        assert small_order(enc), enc.hex()
    from exchange_client.verify import raw_key

    for _ in range(16):
        k = Ed25519PrivateKey.generate()
        assert not small_order(raw_key(k.public_key()))
        assert not small_order(k.sign(b"m")[:32])


def test_a_forgery_under_a_small_order_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from exchange_client import verify_answer

    identity = (1).to_bytes(32, "little")
    weak = Ed25519PublicKey.from_public_bytes(identity)
    request, answer = signed_answer(Ed25519PrivateKey.generate())
    forged = identity + bytes(32)  # R = identity, S = 0: "verifies" for any message without the strict checks
    weak.verify(forged, canonical_digest(answer))  # OpenSSL alone accepts it
    answer.signature.key_id, answer.signature.signature = key_id(weak), forged
    expected = Expected("gov.sz.psb", "gov.sz.hcb", request.dataset, question_of(request))
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_answer(answer, expected, weak)


def _mth(leaves):
    """RFC 9162 §2.1.1 MTH, written from the RFC (independent of the client's fold)."""
    import hashlib

    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m, leaves):
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return _path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def signed_group(key, n):
    """``n`` answers signed as one group commit (canonical form version 3), as a node signs them."""
    import hashlib

    from exchange_client import group_statement

    answers = []
    for i in range(n):
        request, answer = signed_answer(key)
        answer.header.log_sequence = 100 + i
        answer.ClearField("signature")
        answers.append(answer)
    leaves = [hashlib.sha256(b"\x00" + canonical_digest(a)).digest() for a in answers]
    root = _mth(leaves)
    signature = key.sign(hashlib.sha256(group_statement("gov.sz.psb", n, root)).digest())
    for i, a in enumerate(answers):
        a.signature.node, a.signature.key_id = "gov.sz.psb", key_id(key.public_key())
        a.signature.digest, a.signature.signature = canonical_digest(a), signature
        a.signature.group_size, a.signature.group_index = n, i
        a.signature.group_path.extend(_path(i, leaves))
    return request, answers


def test_every_answer_of_a_signed_group_verifies_and_its_signature_is_checked_once():
    from exchange_client import VerifiedGroups, verify_answer

    key = Ed25519PrivateKey.generate()
    for n in (1, 2, 3, 5, 8, 13):
        request, answers = signed_group(key, n)
        expected = Expected("gov.sz.psb", "gov.sz.hcb", request.dataset, question_of(request))
        groups = VerifiedGroups()
        for a in answers:
            assert verify_answer(a, expected, key.public_key(), groups).node == "gov.sz.psb"
        assert len(groups) == 1, n


def test_a_group_answer_with_another_path_position_size_or_signature_is_refused():
    from exchange_client import VerifiedGroups, verify_answer

    key = Ed25519PrivateKey.generate()
    request, answers = signed_group(key, 5)
    expected = Expected("gov.sz.psb", "gov.sz.hcb", request.dataset, question_of(request))
    groups = VerifiedGroups()
    assert verify_answer(answers[0], expected, key.public_key(), groups)

    def altered(change):
        a = node_pb2.RecordAnswer()
        a.CopyFrom(answers[2])
        change(a.signature)
        return a

    def other_path(s):
        del s.group_path[:]
        s.group_path.extend(answers[3].signature.group_path)

    def flip(s):
        s.signature = bytes([s.signature[0] ^ 1]) + s.signature[1:]

    for change, message in [
        (other_path, "does not verify"),
        (lambda s: setattr(s, "group_index", 3), "does not verify"),
        (lambda s: setattr(s, "group_index", 5), "group path does not hold"),
        (lambda s: setattr(s, "group_size", 6), "does not verify"),
        (lambda s: s.group_path.pop(), "group path does not hold"),
        (flip, "does not verify"),  # a remembered statement does not excuse another signature
        (lambda s: setattr(s, "group_size", 0), "no group size"),
    ]:
        with pytest.raises(VerificationError, match=message):
            verify_answer(altered(change), expected, key.public_key(), groups)
    forger = Ed25519PrivateKey.generate()
    _, forged = signed_group(forger, 5)
    forged[2].signature.key_id = key_id(key.public_key())
    with pytest.raises(VerificationError, match="does not verify"):
        verify_answer(forged[2], expected, key.public_key(), groups)
    assert verify_answer(answers[2], expected, key.public_key(), groups)
