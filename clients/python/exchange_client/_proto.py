"""The gRPC stubs, generated from the repository's ``proto/`` with grpcio-tools on first use
(into ``_generated/``, git-ignored) and regenerated whenever a ``.proto`` file changes.

``EXCHANGE_PROTO_DIR`` names the folder holding ``exchange/v1/*.proto`` when the package is
not used from the repository (default: ``<repo>/proto``)."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

_GENERATED = Path(__file__).resolve().parent / "_generated"
_STAMP = ".proto-sha256"


def proto_root() -> Path:
    env = os.environ.get("EXCHANGE_PROTO_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "proto"
    if not (root / "exchange" / "v1").is_dir():
        raise RuntimeError(
            f"no exchange/v1/*.proto under {root}: set EXCHANGE_PROTO_DIR to the repository's proto folder"
        )
    return root


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def generate() -> Path:
    """Generates the stubs if missing or stale; returns their folder."""
    root = proto_root()
    files = sorted((root / "exchange" / "v1").glob("*.proto"))
    stamp = _fingerprint(files)
    stamp_file = _GENERATED / _STAMP
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return _GENERATED
    from grpc_tools import protoc  # only needed when (re)generating

    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=_GENERATED.parent))
    try:
        args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={tmp}", f"--grpc_python_out={tmp}"]
        rc = protoc.main(args + [str(f.relative_to(root)) for f in files])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed (exit {rc}) on {root}")
        (tmp / _STAMP).write_text(stamp)
        shutil.rmtree(_GENERATED, ignore_errors=True)
        tmp.rename(_GENERATED)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _GENERATED


def load():
    """Imports the generated modules: (common_pb2, catalog_pb2, catalog_pb2_grpc, node_pb2, node_pb2_grpc)."""
    folder = str(generate())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    names = ["common_pb2", "catalog_pb2", "catalog_pb2_grpc", "node_pb2", "node_pb2_grpc"]
    return tuple(importlib.import_module(f"exchange.v1.{n}") for n in names)


common_pb2, catalog_pb2, catalog_pb2_grpc, node_pb2, node_pb2_grpc = load()
