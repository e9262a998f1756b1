"""Fixtures for a real federation, described by environment variables (the Rust test
``tests/tests/python_client.rs`` starts the federation and sets them):

- ``EXCHANGE_PROFILE``: the housing bureau's connection profile (TOML);
- ``EXCHANGE_LANDLORD_ID``, ``EXCHANGE_LANDLORD_NAME``, ``EXCHANGE_LANDLORD_STATUS``: a
  landlord of the demo data and the population record's values the tests expect;
- ``EXCHANGE_LANDLORD_CERT``: the number of that landlord's property certificate;
- ``EXCHANGE_TENANT_ID``, ``EXCHANGE_TENANT_NAME``, ``EXCHANGE_TENANT_STATUS``: another
  citizen of the demo data (the batch tests ask about both);
- ``EXCHANGE_GSC_PROFILE``, ``EXCHANGE_COMPANY_CODE``, ``EXCHANGE_COMPANY_LICENCE``: the
  service centre's profile and an active company with its business licence number;
- ``EXCHANGE_CANONICAL_VECTORS``: a JSON file of answers encoded by the Rust node's types
  with their canonical bytes.

A missing variable fails the test that needs it (nothing is skipped)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, from the repository


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test -p exchange-tests --test python_client`")
    return value


@pytest.fixture(scope="session")
def client():
    from exchange_client import ExchangeClient

    with ExchangeClient.from_profile(env("EXCHANGE_PROFILE")) as c:
        yield c


def citizen(prefix: str) -> dict:
    """A citizen of the demo data from ``<prefix>_ID``, ``_NAME`` and ``_STATUS``."""
    return {"id": env(f"{prefix}_ID"), "name": env(f"{prefix}_NAME"), "status": env(f"{prefix}_STATUS")}


@pytest.fixture(scope="session")
def landlord():
    return {**citizen("EXCHANGE_LANDLORD"), "cert_no": env("EXCHANGE_LANDLORD_CERT")}


@pytest.fixture(scope="session")
def tenant():
    return citizen("EXCHANGE_TENANT")


@pytest.fixture(scope="session")
def service_centre():
    from exchange_client import ExchangeClient

    with ExchangeClient.from_profile(env("EXCHANGE_GSC_PROFILE")) as c:
        yield c


@pytest.fixture(scope="session")
def company():
    return {"code": env("EXCHANGE_COMPANY_CODE"), "licence": env("EXCHANGE_COMPANY_LICENCE")}
