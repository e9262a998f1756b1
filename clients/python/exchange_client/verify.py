"""Verification of what the federation sends, as ``client-sdk/src/verify.rs`` does it
(strict Ed25519, as ``verify_strict``: small-order keys and R are refused): the
catalog's signature over the federation configuration (against the pinned catalog key) and
every node answer's signature (against the node key that configuration gives). Pure
functions, no I/O. Any mismatch raises :class:`VerificationError`; nothing unverified is
returned."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import DecodeError

from ._proto import catalog_pb2
from .canonical import canonical_digest

CONFIG_DOMAIN = b"exchange.v1/federation-config\x00"
GROUP_DOMAIN = b"exchange.v1/answer-group/v3\x00"


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def group_root(digest: bytes, index: int, size: int, path) -> bytes:
    """The Merkle root an answer's inclusion path leads to (RFC 9162 §2.1.3.2, steps 1 to 5,
    with leaf ``SHA-256(0x00 || digest)``). Raises ``ValueError`` for an index outside the
    group or a path of the wrong length."""
    if index >= size:
        raise ValueError(f"index {index} is outside a group of {size}")
    fn, sn, r = index, size - 1, _leaf_hash(digest)
    for p in path:
        if len(p) != 32:
            raise ValueError("a hash of its group path is not 32 bytes")
        if sn == 0:
            raise ValueError("the path is too long")
        if fn & 1 or fn == sn:
            r = _node_hash(bytes(p), r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, bytes(p))
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the path is too short")
    return r


def group_statement(node: str, size: int, root: bytes) -> bytes:
    """The bytes of the statement a node signs for a group commit of ``size`` answers
    (canonical form version 3, ``docs/canonical-form.md`` §4)."""
    name = node.encode()
    return GROUP_DOMAIN + len(name).to_bytes(2, "big") + name + size.to_bytes(8, "big") + root


class VerifiedGroups:
    """The group statements whose node signature verified, so that the other answers of the
    same group commit cost a path instead of an Ed25519 check (as the Rust SDK's
    ``VerifiedGroups``): an entry is the exact (key, statement digest, signature) verified.
    Bounded: two generations of ``GENERATION`` entries."""

    GENERATION = 4096

    def __init__(self):
        self._new, self._old = set(), set()

    def __contains__(self, entry) -> bool:
        return entry in self._new or entry in self._old

    def add(self, entry) -> None:
        if len(self._new) >= self.GENERATION:
            self._old, self._new = self._new, set()
        self._new.add(entry)

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


class VerificationError(Exception):
    """A signature, digest or binding did not verify: the data must not be used."""


# Edwards25519 (RFC 8032), only to tell small-order points: what Rust's `verify_strict`
# refuses beyond what OpenSSL's Ed25519 verification does (a small-order public key or R).
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decode_point(enc: bytes):
    y = int.from_bytes(enc, "little") & ((1 << 255) - 1)
    sign = enc[31] >> 7
    y %= _P
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = x * _SQRT_M1 % _P
        if (v * x * x - u) % _P != 0:
            return None  # not on the curve
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _double(pt):
    x, y = pt
    t = _D * x * x * y * y % _P
    return (2 * x * y * pow(1 + t, -1, _P) % _P, (y * y + x * x) * pow(1 - t, -1, _P) % _P)


def small_order(enc: bytes) -> bool:
    """Whether a 32-byte encoding is a point of small order (or no point at all)."""
    pt = _decode_point(bytes(enc)) if len(enc) == 32 else None
    if pt is None:
        return True
    for _ in range(3):
        pt = _double(pt)
    return pt == (0, 1)


def _verify_strict(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    if small_order(raw_key(key)) or small_order(signature[:32]):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def raw_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | bytes) -> str:
    """Hex of the first 8 bytes of SHA-256 of the raw 32-byte public key."""
    raw = key if isinstance(key, (bytes, bytearray)) else raw_key(key)
    return hashlib.sha256(raw).digest()[:8].hex()


@dataclass(frozen=True)
class Expected:
    """What was asked: the node asked, the caller's own department, the dataset, the question."""

    node: str
    requester: str
    dataset: str
    question: object  # exchange.v1.Question


@dataclass(frozen=True)
class Verified:
    """An answer whose node signature verified: the only form in which node data is handed out."""

    answer: object
    node: str
    key_id: str
    digest: bytes


def _subject_eq(a, b, name) -> bool:
    if a.HasField(name) != b.HasField(name):
        return False
    x, y = getattr(a, name), getattr(b, name)
    return (x.kind, x.id) == (y.kind, y.id)


def _differs(got, asked) -> str:
    """Which parts of two questions differ (names only, never values, which may be personal)."""
    parts = []
    if got.licence_id != asked.licence_id:
        parts.append("licence number")
    if not _subject_eq(got, asked, "subject"):
        parts.append("subject")
    if not _subject_eq(got, asked, "claimed_holder"):
        parts.append("claimed holder")
    if [(c.name, c.value_sha256) for c in got.claims] != [(c.name, c.value_sha256) for c in asked.claims]:
        parts.append("claims")
    if got.version != asked.version:
        parts.append("version")
    if list(got.fields) != list(asked.fields):
        parts.append("fields")
    return ", ".join(parts)


def verify_answer(answer, expected: Expected, node_key, groups: VerifiedGroups | None = None) -> Verified:
    """Recomputes the answer's canonical digest and compares it with the signed one, checks
    that the header names the node asked, the caller and the dataset asked, that the
    signature is by that node with the key of the federation configuration, verifies the
    Ed25519 signature (over the group statement the answer's path leads to, canonical form
    version 3, or over the digest alone when ``group_size`` is 0, version 2), and checks that
    the answer repeats the question asked. ``node_key`` is the node's key, or the list of its
    keys in force during a rotation (the registered one and those published beside it): the
    answer's key id picks one of them, never another key. ``groups`` remembers verified group
    statements across calls."""
    node = expected.node

    def bad(what: str) -> VerificationError:
        return VerificationError(f"answer from {node}: {what}")

    if not answer.HasField("signature"):
        raise bad("it carries no signature")
    if not answer.HasField("header"):
        raise bad("it carries no header")
    header, signature = answer.header, answer.signature
    if header.node != node:
        raise bad(f"its header names node {header.node!r}, not the node asked")
    if header.requester != expected.requester:
        raise bad(f"its header names requester {header.requester!r}, not {expected.requester}")
    if header.dataset != expected.dataset:
        raise bad(f"its header names dataset {header.dataset!r}, not the dataset asked")
    if signature.node != node:
        raise bad(f"it is signed by {signature.node!r}, not by the node asked")
    # The node's keys in force: the registered one, and those published beside it during a
    # rotation (the next before the switch, the previous until retired).
    keys = list(node_key) if isinstance(node_key, (list, tuple)) else [node_key]
    by_id = {key_id(k): k for k in keys}
    if signature.key_id not in by_id:
        raise bad(
            f"it is signed with key {signature.key_id!r}, but the federation configuration gives the node keys "
            f"{', '.join(by_id)}"
        )
    node_key = by_id[signature.key_id]
    digest = canonical_digest(answer)
    if bytes(signature.digest) != digest:
        raise bad("its digest does not match its content: the answer was altered")
    if len(signature.signature) != 64:
        raise bad(f"signature is {len(signature.signature)} bytes, expected 64")
    sig = bytes(signature.signature)
    if signature.group_size == 0:
        if signature.group_index != 0 or len(signature.group_path) != 0:
            raise bad("it gives a group path but no group size")
        if not _verify_strict(node_key, sig, digest):
            raise bad("signature does not verify under the node's key")
    else:
        try:
            root = group_root(digest, signature.group_index, signature.group_size, signature.group_path)
        except ValueError as e:
            raise bad(f"its group path does not hold: {e}") from None
        statement = hashlib.sha256(group_statement(node, signature.group_size, root)).digest()
        entry = (raw_key(node_key), statement, sig)
        if groups is None or entry not in groups:
            if not _verify_strict(node_key, sig, statement):
                raise bad("signature does not verify under the node's key")
            if groups is not None:
                groups.add(entry)
    if not answer.HasField("question"):
        raise bad("it does not repeat the question it answers")
    diff = _differs(answer.question, expected.question)
    if diff:
        raise bad(f"it answers another question than the one asked ({diff})")
    return Verified(answer=answer, node=node, key_id=signature.key_id, digest=digest)


def verify_items(items, expected: list[Expected], node_key, groups: VerifiedGroups | None = None) -> list:
    """Verifies the items of a batch answer (``answer.items``) against the items asked, in
    order, as the Rust SDK does: one result per item, either the item's :class:`Verified`
    answer or, for an item the node refused, its ``exchange.v1.ItemStatus``. A batch answer
    holding another number of items than asked, an item marked OK without an answer, or
    any item whose answer fails :func:`verify_answer` (altered, signed by another key, or
    answering another item's question) raises :class:`VerificationError` for the whole
    batch: a node that sends one bad item cannot be trusted with the others."""
    if len(items) != len(expected):
        node = expected[0].node if expected else "the node"
        raise VerificationError(f"batch answer from {node} holds {len(items)} items for {len(expected)} asked")
    out = []
    for i, (item, want) in enumerate(zip(items, expected)):
        if item.status.code != 0:
            out.append(item.status)
            continue
        if not item.HasField("answer"):
            raise VerificationError(f"batch item {i} from {want.node} is OK but carries no answer")
        try:
            out.append(verify_answer(item.answer, want, node_key, groups))
        except VerificationError as e:
            raise VerificationError(f"batch item {i}: {e}") from None
    return out


@dataclass(frozen=True)
class NodeInfo:
    """A node as the verified federation configuration describes it."""

    dept_id: str
    endpoint: str
    key: Ed25519PublicKey | None
    suspended: bool
    published: tuple = ()

    @property
    def keys(self) -> list:
        """Every key the node's answers may be signed with now: the registered key and the
        ones published beside it (``Member.node_published_keys``)."""
        return ([self.key] if self.key is not None else []) + list(self.published)


@dataclass(frozen=True)
class FederationView:
    """A federation configuration whose catalog signature verified."""

    config: object  # exchange.v1.FederationConfig
    nodes: dict

    @property
    def version(self) -> int:
        return self.config.version

    def node(self, dept_id: str) -> NodeInfo | None:
        return self.nodes.get(dept_id)

    def config_keys(self) -> list:
        """The catalog configuration keys this configuration lists (purpose CONFIGURATION):
        the keys the next configuration may be signed with."""
        purpose = catalog_pb2.KeyPurpose.Value("KEY_PURPOSE_CONFIGURATION")
        return [
            Ed25519PublicKey.from_public_bytes(bytes(k.public_key))
            for k in self.config.catalog_keys
            if k.purpose == purpose and len(k.public_key) == 32
        ]


def verify_federation_config(signed, trusted) -> FederationView:
    """Verifies the catalog's Ed25519 signature over ``domain ‖ body`` with one of the
    ``trusted`` configuration keys (a key or a list: the pinned current and next keys, and
    those the last verified configuration listed), then decodes the body. Signed by another
    key (the catalog's token or checkpoint key included), or altered:
    :class:`VerificationError`."""
    keys = list(trusted) if isinstance(trusted, (list, tuple)) else [trusted]
    by_id = {key_id(k): k for k in keys}
    catalog_key = by_id.get(signed.key_id)
    if catalog_key is None:
        raise VerificationError(
            f"federation configuration is signed with key {signed.key_id[:32]!r}, not a trusted configuration key "
            f"({', '.join(by_id)})"
        )
    if len(signed.signature) != 64:
        raise VerificationError(f"federation configuration: signature is {len(signed.signature)} bytes, expected 64")
    if not _verify_strict(catalog_key, bytes(signed.signature), CONFIG_DOMAIN + bytes(signed.body)):
        raise VerificationError("federation configuration: signature does not verify under the pinned catalog key")
    config = catalog_pb2.FederationConfig()
    try:
        config.ParseFromString(bytes(signed.body))
    except DecodeError as e:
        raise VerificationError(f"signed configuration does not decode: {e}") from None
    suspended = catalog_pb2.MemberStatus.Value("MEMBER_STATUS_SUSPENDED")
    nodes = {}
    for m in config.members:
        key = None
        if m.node_signing_key:
            if len(m.node_signing_key) != 32:
                raise VerificationError(f"member {m.dept_id}: node signing key is not 32 bytes")
            key = Ed25519PublicKey.from_public_bytes(bytes(m.node_signing_key))
        published = tuple(
            Ed25519PublicKey.from_public_bytes(bytes(k)) for k in m.node_published_keys if len(k) == 32
        )
        nodes[m.dept_id] = NodeInfo(m.dept_id, m.endpoint, key, m.status == suspended, published)
    return FederationView(config=config, nodes=nodes)
