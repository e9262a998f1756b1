"""Connection profiles and the client: mTLS channels to the catalog and to nodes (grpcio),
the verified federation configuration, consents and consent tokens, verified node queries."""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from google.protobuf.message import DecodeError

from ._proto import catalog_pb2, catalog_pb2_grpc, common_pb2, node_pb2, node_pb2_grpc
from .canonical import question_of
from .verify import (
    Expected, FederationView, Verified, VerificationError, VerifiedGroups, verify_answer, verify_federation_config,
    verify_items,
)


# How long a verified federation configuration is used before it is fetched again.
CONFIG_MAX_AGE_SECS = 5.0


class ExchangeError(Exception):
    """Base of this package's errors."""


class ProfileError(ExchangeError):
    """The connection profile is missing, unreadable or incomplete."""


# gRPC status code numbers (as a batch item's status carries them) to grpcio's codes.
_STATUS_CODES = {c.value[0]: c for c in grpc.StatusCode}

# The node's batch forms (one per query form).
BATCH_METHODS = (
    "BatchGetLicences", "BatchVerifyLicences", "BatchListLicences", "BatchGetRecords", "BatchMatchRecords",
)


class Refused(ExchangeError):
    """A call the federation refused: the gRPC code and message, and the machine-readable
    refusal (``exchange.v1.Refusal``) from the status details when the server sent one."""

    def __init__(self, code: grpc.StatusCode, message: str, refusal=None):
        self.code = code
        self.message = message
        self.refusal = refusal
        reason = self.reason or "no reason code"
        field = f", field {self.field}" if self.field else ""
        super().__init__(f"{code.name}: {message} ({reason}{field})")

    @property
    def reason(self) -> str | None:
        """The reason code's name without its prefix, e.g. ``FIELD_NOT_GRANTED``."""
        if self.refusal is None:
            return None
        return common_pb2.ReasonCode.Name(self.refusal.reason_code).removeprefix("REASON_CODE_")

    @property
    def field(self) -> str:
        return self.refusal.field if self.refusal is not None else ""

    @classmethod
    def of_item(cls, status) -> "Refused":
        """The refusal of one batch item (``exchange.v1.ItemStatus``): the code the item would
        have had as a single call, its message and reason."""
        code = _STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        return cls(code, status.message, common_pb2.Refusal(reason_code=status.reason_code))

    @classmethod
    def of(cls, err: grpc.RpcError) -> "Refused":
        refusal = None
        for key, value in err.trailing_metadata() or ():
            if key == "grpc-status-details-bin" and value:
                refusal = common_pb2.Refusal()
                try:
                    refusal.ParseFromString(bytes(value))
                except DecodeError:
                    refusal = None
        return cls(err.code(), err.details() or "", refusal)


_KEYS = {
    "catalog",
    "catalog_name",
    "catalog_id",
    "catalog_key",
    "catalog_next_key",
    "ca",
    "cert",
    "key",
    "log_key",
    "timeout_secs",
}


@dataclass(frozen=True)
class Profile:
    """A connection profile (the TOML the Rust SDK reads), every path resolved against the
    profile's folder."""

    catalog: str
    catalog_name: str
    catalog_key: Ed25519PublicKey
    ca: Path
    cert: Path
    key: Path
    timeout_secs: float = 10.0
    catalog_next_key: Ed25519PublicKey | None = None  # the catalog's next configuration key

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ProfileError(f"read profile {path}: {e}") from None
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ProfileError(f"profile {path}: unknown settings {', '.join(unknown)}")
        for k in ("catalog", "catalog_key", "ca", "cert", "key"):
            if k not in data:
                raise ProfileError(f"profile {path} does not set {k}")
        base = path.resolve().parent

        def resolve(p: str) -> Path:
            q = Path(p)
            return q if q.is_absolute() else base / q

        return cls(
            catalog=data["catalog"],
            catalog_name=data.get("catalog_name", "localhost"),
            catalog_key=read_public_key(data["catalog_key"], base),
            ca=resolve(data["ca"]),
            cert=resolve(data["cert"]),
            key=resolve(data["key"]),
            timeout_secs=float(max(1, int(data.get("timeout_secs", 10)))),
            catalog_next_key=read_public_key(data["catalog_next_key"], base) if "catalog_next_key" in data else None,
        )


def read_public_key(text_or_path: str, base: Path = Path(".")) -> Ed25519PublicKey:
    """An Ed25519 public key: 64 hex characters, or a file (relative to ``base``) holding
    hex, a ``PUBLIC KEY`` PEM or a PKCS#8 ``PRIVATE KEY`` PEM."""
    candidate = Path(text_or_path)
    candidate = candidate if candidate.is_absolute() else base / candidate
    text = candidate.read_text() if candidate.is_file() else text_or_path
    text = text.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = load_pem_public_key(text.encode())
        elif "BEGIN PRIVATE KEY" in text:
            key = load_pem_private_key(text.encode(), password=None)
            key = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        elif re.fullmatch(r"[0-9a-fA-F]{64}", text):
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
        else:
            raise ProfileError("catalog_key is neither 64 hex characters nor a key file")
    except ValueError as e:
        raise ProfileError(f"catalog_key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProfileError("catalog_key is not an Ed25519 key")
    return key


def _target(endpoint: str) -> tuple[str, str]:
    """``https://host:port`` → (``host:port``, ``host``)."""
    u = urlsplit(endpoint)
    if u.scheme != "https" or not u.hostname or not u.port:
        raise ExchangeError(f"endpoint {endpoint!r} is not https://host:port")
    return f"{u.hostname}:{u.port}", u.hostname


class ExchangeClient:
    """A department system's client. Every node answer it returns has been verified."""

    def __init__(self, profile: Profile, dept_id: str | None = None):
        self.profile = profile
        try:
            root = profile.ca.read_bytes()
            chain = profile.cert.read_bytes()
            key = profile.key.read_bytes()
        except OSError as e:
            raise ProfileError(f"read TLS files: {e}") from None
        self._creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
        self.dept_id = dept_id or _dept_of_certificate(chain)
        self._channels: dict[str, grpc.Channel] = {}
        target, _ = _target(profile.catalog)
        self.catalog = catalog_pb2_grpc.CatalogStub(self._channel(target, profile.catalog_name))
        self._view: FederationView | None = None
        self._view_at = 0.0
        # Group statements verified: one Ed25519 check per node group commit.
        self.groups = VerifiedGroups()

    @classmethod
    def from_profile(cls, path: str | Path) -> "ExchangeClient":
        return cls(Profile.load(path))

    def _channel(self, target: str, name: str) -> grpc.Channel:
        if target not in self._channels:
            opts = [("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)]
            self._channels[target] = grpc.secure_channel(target, self._creds, options=opts)
        return self._channels[target]

    def close(self) -> None:
        for c in self._channels.values():
            c.close()
        self._channels.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.profile.timeout_secs)
        except grpc.RpcError as e:
            raise Refused.of(e) from None

    # Catalog

    def federation(self, refresh: bool = False) -> FederationView:
        """The federation configuration, its catalog signature verified with the pinned keys
        (and those the last verified configuration listed); fetched again once older than
        ``CONFIG_MAX_AGE_SECS`` (as the Rust SDK), so that a suspended provider or a new node key
        is learnt within that bound."""
        aged = self._view is not None and time.monotonic() - self._view_at > CONFIG_MAX_AGE_SECS
        if self._view is None or refresh or aged:
            try:
                signed = self._call(self.catalog.GetFederationConfig, catalog_pb2.GetFederationConfigRequest())
            except Refused as e:
                if aged and not refresh and e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return self._view  # the catalog is down: the nodes enforce freshness
                raise
            # The pinned keys and those the last verified configuration listed: the catalog
            # switches to a published next key without a new pin.
            trusted = [self.profile.catalog_key]
            if self.profile.catalog_next_key is not None:
                trusted.append(self.profile.catalog_next_key)
            if self._view is not None:
                trusted += self._view.config_keys()
            view = verify_federation_config(signed, trusted)
            if self._view is not None and view.version < self._view.version:
                raise VerificationError(
                    f"federation configuration version {view.version} is older than {self._view.version} (rollback)"
                )
            self._view, self._view_at = view, time.monotonic()
        return self._view

    def record_consent(self, request):
        """Records a consent (``exchange.v1.RecordConsentRequest``); returns the ``Consent``."""
        return self._call(self.catalog.RecordConsent, request)

    def consent_token(self, consent_id: str, dataset: str) -> str:
        """A consent token (JWT) for one dataset of a consent."""
        req = catalog_pb2.IssueConsentTokenRequest(consent_id=consent_id, dataset=dataset)
        return self._call(self.catalog.IssueConsentToken, req).token

    # Nodes

    def _node(self, dataset: str):
        provider = dataset.split("/", 1)[0]
        info = self.federation().node(provider)
        if info is None:
            raise ExchangeError(f"{provider} is not a member of the federation configuration")
        if info.suspended:
            raise ExchangeError(f"{provider} is suspended in the federation configuration")
        if not info.endpoint or info.key is None:
            raise ExchangeError(f"{provider} has no node endpoint or node key in the federation configuration")
        target, host = _target(info.endpoint)
        return info, node_pb2_grpc.NodeStub(self._channel(target, host))

    def expected(self, request) -> Expected:
        """What an answer to ``request`` must say (node, requester, dataset, question)."""
        provider = request.dataset.split("/", 1)[0]
        return Expected(provider, self.dept_id, request.dataset, question_of(request))

    def query(self, method: str, request) -> Verified:
        """Calls ``method`` (``GetRecord``, ``VerifyLicence``, ...) on the dataset's node and
        returns the verified answer; an answer that fails verification raises."""
        info, stub = self._node(request.dataset)
        answer = self._call(getattr(stub, method), request)
        return verify_answer(answer, self.expected(request), info.keys, self.groups)

    def raw_query(self, method: str, request):
        """The node's answer as received, NOT verified (for tests and evidence tooling)."""
        _, stub = self._node(request.dataset)
        return self._call(getattr(stub, method), request)

    def batch(self, method: str, request) -> list:
        """Calls a batch form (``BatchGetRecords``, ``BatchVerifyLicences``, ... see
        :data:`BATCH_METHODS`) on the dataset's node: one result per item, in order, each
        either the item's :class:`Verified` answer or a :class:`Refused` (not raised) with
        the item's code and reason. A refusal of the whole call raises :class:`Refused`; an
        answer that fails verification raises :class:`VerificationError` (see
        :meth:`verify_batch`)."""
        if method not in BATCH_METHODS:
            raise ExchangeError(f"{method} is not a batch form of the node ({', '.join(BATCH_METHODS)})")
        return self.verify_batch(request, self.raw_query(method, request))

    def verify_batch(self, request, answer) -> list:
        """Verifies a batch answer against the batch asked (:func:`verify_items`), each item
        against its own question; refused items become :class:`Refused` values."""
        info, _ = self._node(request.dataset)
        expected = [self.expected_item(request, item) for item in request.items]
        results = verify_items(answer.items, expected, info.keys, self.groups)
        return [r if isinstance(r, Verified) else Refused.of_item(r) for r in results]

    def expected_item(self, request, item) -> Expected:
        """What the answer to one item of the batch ``request`` must say."""
        provider = request.dataset.split("/", 1)[0]
        return Expected(provider, self.dept_id, request.dataset, question_of(item))

    def node_key(self, dataset: str) -> Ed25519PublicKey:
        return self._node(dataset)[0].key

    def get_record(self, dataset, subject, fields, purpose_code, reason, consent_token="", trace_id="", version=0):
        req = node_pb2.GetRecordRequest(
            context=context(purpose_code, reason, trace_id), dataset=dataset, subject=subject,
            fields=list(fields), consent_token=consent_token, version=version,
        )
        return self.query("GetRecord", req)

    def match_record(self, dataset, subject, claims: dict, purpose_code, reason, consent_token="", trace_id=""):
        req = node_pb2.MatchRecordRequest(
            context=context(purpose_code, reason, trace_id), dataset=dataset, subject=subject,
            claims=[node_pb2.ClaimedValue(name=k, value=v) for k, v in claims.items()], consent_token=consent_token,
        )
        return self.query("MatchRecord", req)

    def verify_licence(self, dataset, licence_id, purpose_code, reason, holder=None, fields=(), consent_token="", trace_id=""):
        req = node_pb2.VerifyLicenceRequest(
            context=context(purpose_code, reason, trace_id), dataset=dataset, licence_id=licence_id,
            fields=list(fields), consent_token=consent_token,
        )
        if holder is not None:
            req.holder.CopyFrom(holder)
        return self.query("VerifyLicence", req)


def context(purpose_code: str, reason: str, trace_id: str = ""):
    return common_pb2.QueryContext(purpose_code=purpose_code, reason=reason, trace_id=trace_id)


def person(resident_id: str):
    return common_pb2.Subject(kind=common_pb2.SubjectKind.Value("SUBJECT_KIND_PERSON"), id=resident_id)


def organisation(credit_code: str):
    return common_pb2.Subject(kind=common_pb2.SubjectKind.Value("SUBJECT_KIND_ORGANISATION"), id=credit_code)


def face_scan_consent(subject, requester: str, scopes, purpose_code: str, application: str, hours=24):
    """A consent given by face scan in an online service (as the Rust ``face_scan_consent``):
    ``subject`` is a resident id or a ``Subject``; ``scopes`` says, dataset by dataset, which
    fields the subject consents to: a mapping or pairs of dataset and fields."""
    pairs = scopes.items() if isinstance(scopes, dict) else scopes
    return catalog_pb2.RecordConsentRequest(
        subject=person(subject) if isinstance(subject, str) else subject, requester=requester,
        scopes=[catalog_pb2.ConsentScope(dataset=d, fields=list(f)) for d, f in pairs],
        purpose_code=purpose_code, expires_at_unix_ms=int(time.time() * 1000) + hours * 3600 * 1000,
        evidence=catalog_pb2.ConsentEvidence(
            method=catalog_pb2.ConsentMethod.Value("CONSENT_METHOD_FACE_SCAN"),
            channel=catalog_pb2.ConsentChannel.Value("CONSENT_CHANNEL_ONLINE"),
            reference=f"face-{application}",
        ),
        application_id=application,
    )


def _dept_of_certificate(pem: bytes) -> str:
    from cryptography import x509

    cert = x509.load_pem_x509_certificates(pem)[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = []
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if san else []:
        if uri.startswith("urn:exchange:dept:"):
            return uri.removeprefix("urn:exchange:dept:")
    raise ProfileError("the certificate names no department (SAN URI urn:exchange:dept:<id>)")
