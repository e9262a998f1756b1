"""The canonical digest of a signed answer, byte for byte as ``proto/src/canonical.rs`` and
``core/src/digest.rs`` (canonical form version 2) compute it:

``"exchange.v1/answer/v2\\0"``, kind length (u16 BE), kind; then per item its label length
(u16 BE), label, a tag and the value: 1 text (u32 BE length, UTF-8), 2 u64 (8 bytes BE),
3 i64 (8 bytes BE, two's complement), 4 bytes (u32 BE length, bytes), 5 list (u32 BE count,
then that many repetitions of the items that follow). The digest is SHA-256 of it all.
Items: the header, the question the answer repeats, then the payload of the answer's kind;
never the signature."""

from __future__ import annotations

import hashlib
import struct

from ._proto import common_pb2, node_pb2

ANSWER_DOMAIN = b"exchange.v1/answer/v2\x00"


def _len16(n: int) -> bytes:
    return struct.pack(">H", min(n, 0xFFFF))


def _len32(n: int) -> bytes:
    return struct.pack(">I", min(n, 0xFFFFFFFF))


class CanonicalHasher:
    """Collects the canonical bytes of one answer of ``kind`` (e.g. ``get_record``)."""

    def __init__(self, kind: str):
        k = kind.encode()
        self._buf = bytearray(ANSWER_DOMAIN + _len16(len(k)) + k)

    def _label(self, label: str, tag: int) -> None:
        b = label.encode()
        self._buf += _len16(len(b)) + b + bytes([tag])

    def text(self, label: str, value: str) -> "CanonicalHasher":
        self._label(label, 1)
        b = value.encode("utf-8")
        self._buf += _len32(len(b)) + b
        return self

    def u64(self, label: str, value: int) -> "CanonicalHasher":
        self._label(label, 2)
        self._buf += struct.pack(">Q", value)
        return self

    def i64(self, label: str, value: int) -> "CanonicalHasher":
        self._label(label, 3)
        self._buf += struct.pack(">q", value)
        return self

    def bytes(self, label: str, value: bytes) -> "CanonicalHasher":
        self._label(label, 4)
        self._buf += _len32(len(value)) + bytes(value)
        return self

    def list(self, label: str, count: int) -> "CanonicalHasher":
        self._label(label, 5)
        self._buf += _len32(count)
        return self

    def transcript(self) -> bytes:
        return bytes(self._buf)

    def digest(self) -> bytes:
        return hashlib.sha256(self._buf).digest()


def question(licence_id="", subject=None, claimed_holder=None, claims=(), version=0, fields=()):
    """The question of a query, as the answer must repeat it: claimed values as SHA-256 of
    their UTF-8, fields asked sorted without repeats."""
    q = node_pb2.Question(licence_id=licence_id, version=version, fields=sorted(set(fields)))
    if subject is not None:
        q.subject.CopyFrom(subject)
    if claimed_holder is not None:
        q.claimed_holder.CopyFrom(claimed_holder)
    for c in claims:
        q.claims.add(name=c.name, value_sha256=hashlib.sha256(c.value.encode("utf-8")).digest())
    return q


def _opt(msg, name):
    return getattr(msg, name) if msg.HasField(name) else None


def question_of(request):
    """The question of a request (GetLicence, VerifyLicence, ListLicences, GetRecord,
    MatchRecord) or of a batch item (LicenceItem, VerifyItem, HolderItem, RecordItem,
    MatchItem; a batch item asks for no earlier version)."""
    kind = type(request).__name__
    if kind in ("GetLicenceRequest", "LicenceItem"):
        return question(request.licence_id, version=getattr(request, "version", 0), fields=request.fields)
    if kind in ("VerifyLicenceRequest", "VerifyItem"):
        return question(request.licence_id, claimed_holder=_opt(request, "holder"), fields=request.fields)
    if kind in ("ListLicencesRequest", "HolderItem"):
        return question(subject=_opt(request, "holder"), fields=request.fields)
    if kind in ("GetRecordRequest", "RecordItem"):
        return question(subject=_opt(request, "subject"), version=getattr(request, "version", 0), fields=request.fields)
    if kind in ("MatchRecordRequest", "MatchItem"):
        return question(subject=_opt(request, "subject"), claims=request.claims)
    raise TypeError(f"no question for a {kind}")


def _header(h: CanonicalHasher, a) -> None:
    h.text("node", a.node).text("requester", a.requester).text("dataset", a.dataset)
    h.text("purpose_code", a.purpose_code).text("trace_id", a.trace_id)
    h.i64("served_at_unix_ms", a.served_at_unix_ms).u64("log_sequence", a.log_sequence)


def _subject(h: CanonicalHasher, label: str, s) -> None:
    if s is None:
        h.list(label, 0)
    else:
        h.list(label, 1).i64("kind", s.kind).text("id", s.id)


def _asked(h: CanonicalHasher, q) -> None:
    h.text("licence_id", q.licence_id)
    _subject(h, "subject", _opt(q, "subject"))
    _subject(h, "claimed_holder", _opt(q, "claimed_holder"))
    h.list("claims", len(q.claims))
    for c in q.claims:
        h.text("name", c.name).bytes("value_sha256", c.value_sha256)
    h.u64("version", q.version)
    h.list("fields", len(q.fields))
    for f in q.fields:
        h.text("name", f)


def _fields(h: CanonicalHasher, fields) -> None:
    h.list("fields", len(fields))
    for f in fields:
        h.text("name", f.name).text("value", f.value)


def _licence(h: CanonicalHasher, l) -> None:
    h.text("licence_id", l.licence_id)
    _subject(h, "holder", _opt(l, "holder"))
    h.i64("status", l.status).text("valid_from", l.valid_from).text("valid_until", l.valid_until)
    h.u64("version", l.version)
    _fields(h, l.fields)
    h.u64("historical", 1 if l.historical else 0).i64("current_status", l.current_status)
    h.u64("current_version", l.current_version)


def _record(h: CanonicalHasher, r) -> None:
    _subject(h, "subject", _opt(r, "subject"))
    h.u64("version", r.version)
    _fields(h, r.fields)


def _get_licence(h, a):
    if a.HasField("licence"):
        h.list("licence", 1)
        _licence(h, a.licence)
    else:
        h.list("licence", 0)


def _verify_licence(h, a):
    h.i64("verdict", a.verdict).u64("version", a.version)
    _fields(h, a.fields)


def _list_licences(h, a):
    h.list("licences", len(a.licences))
    for l in a.licences:
        _licence(h, l)


def _get_record(h, a):
    if a.HasField("record"):
        h.list("record", 1)
        _record(h, a.record)
    else:
        h.list("record", 0)


def _match_record(h, a):
    h.u64("version", a.version)
    h.list("matches", len(a.matches))
    for m in a.matches:
        h.text("name", m.name).i64("result", m.result)


KINDS = {
    "LicenceAnswer": ("get_licence", _get_licence),
    "VerifyLicenceAnswer": ("verify_licence", _verify_licence),
    "ListLicencesAnswer": ("list_licences", _list_licences),
    "RecordAnswer": ("get_record", _get_record),
    "MatchAnswer": ("match_record", _match_record),
}


def canonical_hasher(answer) -> CanonicalHasher:
    name = type(answer).__name__
    if name not in KINDS:
        raise TypeError(f"a {name} is not a signed answer")
    kind, payload = KINDS[name]
    h = CanonicalHasher(kind)
    _header(h, answer.header)  # an absent header encodes as the empty one, as in Rust
    _asked(h, answer.question)
    payload(h, answer)
    return h


def canonical_bytes(answer) -> bytes:
    """The canonical bytes of an answer (everything but its signature)."""
    return canonical_hasher(answer).transcript()


def canonical_digest(answer) -> bytes:
    """SHA-256 of :func:`canonical_bytes`: what the node signs and its access log holds."""
    return canonical_hasher(answer).digest()


__all__ = ["CanonicalHasher", "canonical_bytes", "canonical_digest", "question", "question_of", "common_pb2"]
