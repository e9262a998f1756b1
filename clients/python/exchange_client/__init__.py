"""Python client of the Exchange federation: grpcio over mutual TLS, the catalog's signed
federation configuration, consents and consent tokens, and node answers whose Ed25519
signatures are verified over the canonical form before they are returned."""

from .canonical import canonical_bytes, canonical_digest, question, question_of
from .client import (
    BATCH_METHODS, ExchangeClient, ExchangeError, Profile, ProfileError, Refused, context, face_scan_consent,
    organisation, person,
)
from .verify import (
    Expected, FederationView, NodeInfo, Verified, VerificationError, VerifiedGroups, group_root, group_statement,
    key_id, verify_answer, verify_federation_config, verify_items,
)
from ._proto import catalog_pb2, common_pb2, node_pb2

__all__ = [
    "BATCH_METHODS", "ExchangeClient", "ExchangeError", "Expected", "FederationView", "NodeInfo", "Profile",
    "ProfileError", "Refused",
    "Verified", "VerificationError", "VerifiedGroups", "canonical_bytes", "canonical_digest", "catalog_pb2", "common_pb2", "context",
    "face_scan_consent", "group_root", "group_statement", "key_id", "node_pb2", "organisation", "person", "question", "question_of", "verify_answer",
    "verify_federation_config", "verify_items",
]
