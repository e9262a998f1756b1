#!/usr/bin/env python3
"""Checks docs/canonical-vectors.json against docs/canonical-form.md, independently of the
Rust implementation: Python 3 standard library only (Ed25519 by RFC 8032's reference
algorithm). Exit status 0 when every vector holds.

    python3 docs/check_canonical_vectors.py [path/to/canonical-vectors.json]
"""
import base64
import hashlib
import json
import os
import struct
import sys

DOMAIN = b"exchange.v1/answer/v2\x00"
GROUP_DOMAIN = b"exchange.v1/answer-group/v3\x00"


class Canon:
    def __init__(self, kind):
        self.out = bytearray(DOMAIN)
        self.out += struct.pack(">H", len(kind)) + kind.encode()

    def _label(self, label, tag):
        self.out += struct.pack(">H", len(label)) + label.encode() + bytes([tag])

    def text(self, label, value):
        b = (value or "").encode("utf-8")
        self._label(label, 1)
        self.out += struct.pack(">I", len(b)) + b

    def u64(self, label, value):
        self._label(label, 2)
        self.out += struct.pack(">Q", int(value or 0))

    def i64(self, label, value):
        self._label(label, 3)
        self.out += struct.pack(">q", int(value or 0))

    def bytes_(self, label, value):
        self._label(label, 4)
        self.out += struct.pack(">I", len(value)) + value

    def list(self, label, count):
        self._label(label, 5)
        self.out += struct.pack(">I", count)


def subject(c, label, s):
    if s is None:
        c.list(label, 0)
    else:
        c.list(label, 1)
        c.i64("kind", s.get("kind", 0))
        c.text("id", s.get("id", ""))


def values(c, fields):
    c.list("fields", len(fields))
    for f in fields:
        c.text("name", f.get("name", ""))
        c.text("value", f.get("value", ""))


def licence(c, l):
    c.text("licence_id", l.get("licence_id", ""))
    subject(c, "holder", l.get("holder"))
    c.i64("status", l.get("status", 0))
    c.text("valid_from", l.get("valid_from", ""))
    c.text("valid_until", l.get("valid_until", ""))
    c.u64("version", l.get("version", 0))
    values(c, l.get("fields", []))
    c.u64("historical", 1 if l.get("historical") else 0)
    c.i64("current_status", l.get("current_status", 0))
    c.u64("current_version", l.get("current_version", 0))


def canonical(kind, a):
    c = Canon(kind)
    h = a.get("header", {})
    for name in ("node", "requester", "dataset", "purpose_code", "trace_id"):
        c.text(name, h.get(name, ""))
    c.i64("served_at_unix_ms", h.get("served_at_unix_ms", 0))
    c.u64("log_sequence", h.get("log_sequence", 0))
    q = a.get("question", {})
    c.text("licence_id", q.get("licence_id", ""))
    subject(c, "subject", q.get("subject"))
    subject(c, "claimed_holder", q.get("claimed_holder"))
    claims = q.get("claims", [])
    c.list("claims", len(claims))
    for cl in claims:
        c.text("name", cl.get("name", ""))
        c.bytes_("value_sha256", base64.b64decode(cl.get("value_sha256", "")))
    c.u64("version", q.get("version", 0))
    fields = q.get("fields", [])
    c.list("fields", len(fields))
    for f in fields:
        c.text("name", f)
    if kind == "get_licence":
        if a.get("licence") is None:
            c.list("licence", 0)
        else:
            c.list("licence", 1)
            licence(c, a["licence"])
    elif kind == "list_licences":
        ls = a.get("licences", [])
        c.list("licences", len(ls))
        for l in ls:
            licence(c, l)
    elif kind == "verify_licence":
        c.i64("verdict", a.get("verdict", 0))
        c.u64("version", a.get("version", 0))
        values(c, a.get("fields", []))
    elif kind == "get_record":
        r = a.get("record")
        if r is None:
            c.list("record", 0)
        else:
            c.list("record", 1)
            subject(c, "subject", r.get("subject"))
            c.u64("version", r.get("version", 0))
            values(c, r.get("fields", []))
    elif kind == "match_record":
        c.u64("version", a.get("version", 0))
        ms = a.get("matches", [])
        c.list("matches", len(ms))
        for m in ms:
            c.text("name", m.get("name", ""))
            c.i64("result", m.get("result", 0))
    else:
        raise ValueError("unknown kind " + kind)
    return bytes(c.out)


# Ed25519 (RFC 8032, section 6 reference algorithm).
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x & 1) != sign:
        x = P - x
    return x


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
G = (_GX, _GY, 1, _GX * _GY % P)


def _compress(pt):
    zinv = pow(pt[2], P - 2, P)
    x, y = pt[0] * zinv % P, pt[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _sha512_int(b):
    return int.from_bytes(hashlib.sha512(b).digest(), "little")


def ed25519_sign(seed, msg):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    public = _compress(_mul(a, G))
    r = _sha512_int(h[32:] + msg) % L
    rs = _compress(_mul(r, G))
    k = _sha512_int(rs + public + msg) % L
    return public, rs + int.to_bytes((r + k * a) % L, 32, "little")


def mth(leaves):
    """RFC 9162 §2.1.1: the Merkle tree hash of a list of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m, leaves):
    """RFC 9162 §2.1.3.1: PATH(m, D[n]), leaf to root."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "canonical-vectors.json")
    with open(vectors, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["canonical_form"] == 3 and doc["domain"].encode() == DOMAIN
    assert doc["group_domain"].encode() == GROUP_DOMAIN
    seed = bytes.fromhex(doc["signing_key"]["seed_hex"])
    public, _ = ed25519_sign(seed, b"")
    assert public.hex() == doc["signing_key"]["public_key_hex"], "public key"
    assert hashlib.sha256(public).digest()[:8].hex() == doc["signing_key"]["key_id"], "key id"
    failed = 0
    leaves = []
    for v in doc["vectors"]:
        for value, claim in zip(v.get("claimed_values", []), v["answer"].get("question", {}).get("claims", [])):
            assert base64.b64decode(claim["value_sha256"]) == hashlib.sha256(value.encode()).digest(), v["name"]
        data = canonical(v["kind"], v["answer"])
        digest = hashlib.sha256(data).digest()
        _, sig = ed25519_sign(seed, digest)
        ok = (data.hex(), digest.hex(), sig.hex()) == (v["canonical_hex"], v["sha256_hex"], v["signature_hex"])
        print(("ok     " if ok else "FAILED ") + v["name"])
        failed += not ok
        leaves.append(hashlib.sha256(b"\x00" + digest).digest())
    # Version 3: the vectors' digests as one group commit, in file order.
    g = doc["group"]
    root = mth(leaves)
    node = g["node"].encode()
    statement = GROUP_DOMAIN + struct.pack(">H", len(node)) + node + struct.pack(">Q", len(leaves)) + root
    _, sig = ed25519_sign(seed, hashlib.sha256(statement).digest())
    ok = (g["size"], g["root_hex"], g["statement_hex"], g["statement_sha256_hex"], g["signature_hex"]) == (
        len(leaves), root.hex(), statement.hex(), hashlib.sha256(statement).hexdigest(), sig.hex())
    for i, v in enumerate(doc["vectors"]):
        ok = ok and v["group_index"] == i and v["group_path_hex"] == [h.hex() for h in path(i, leaves)]
    print(("ok     " if ok else "FAILED ") + f"group of {len(leaves)}")
    failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
