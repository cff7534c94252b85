"""The on-disk key store shared by client and server.

    <store>/server/   everything the server may see: manifest.json, plan.json + plan.npz, context.bin,
                      mult_key.bin, rotations/<p|m><index>.bin (one rotation key each, by signed index),
                      bootstrap/<slots>.bin
    <store>/client/   secret_key.bin and public_key.bin: never handed to the server (the folder and the
                      secret key are readable by their owner only)

The manifest records the sha256 of every server file; the server checks each file before loading it,
so a truncated, swapped or edited key fails with a message naming the file. It also names the OpenFHE
library that made the keys ("library": the wheel or the native build; stores written before it was
recorded are the wheel's): their files are in that library's format, which the other cannot read.
"""

from __future__ import annotations

import json
from pathlib import Path

from resnet_fhe.backends.bootstrapping import STREAMED_KEYS
from resnet_fhe.backends.openfhe_backend import fhe_library, streams_bootstrap_keys
from resnet_fhe.errors import InputError, PlanError, ResnetFheError
from resnet_fhe.hashing import sha256_file

MANIFEST = "manifest.json"
FORMAT = "resnet-fhe-keystore"


class KeyStoreError(ResnetFheError):
    """A key store or ciphertext file is missing, tampered with, or belongs to another plan."""


def write_manifest(server_dir: Path, fields: dict, known: dict[str, str] | None = None) -> None:
    """Writes the manifest with every server file's sha256; `known` gives digests already computed (by
    relative path), taken as they are."""
    known = known or {}
    files = {name: known.get(name) or sha256_file(p)
             for p in sorted(server_dir.rglob("*")) if p.is_file() and p.name != MANIFEST
             for name in [str(p.relative_to(server_dir))]}
    (server_dir / MANIFEST).write_text(json.dumps({"format": FORMAT, **fields, "files": files}, indent=1) + "\n")


def read_manifest(server_dir: Path) -> dict:
    path = server_dir / MANIFEST
    if not path.is_file():
        raise KeyStoreError(f"{server_dir} is not a key store's server part (no {MANIFEST}); run `resnet-fhe keygen`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KeyStoreError(f"{path} is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise KeyStoreError(f"{path} is not a {FORMAT} manifest")
    return manifest


def stored_library(manifest: dict) -> str:
    """The name of the OpenFHE library whose files the store holds (the wheel's, for older stores)."""
    return manifest.get("library", "openfhe")


def bootstrap_key_kind(library: str) -> str:
    """The manifest's "bootstrap" for a store this version makes with `library`: the wheel's keys for
    OpenFHE's EvalBootstrap, or the native build's per-stage tower files. A store recording another kind
    was made by another version and is not read."""
    return STREAMED_KEYS if streams_bootstrap_keys(library) else "openfhe"


def stored_bootstrap_key_kind(manifest: dict) -> str:
    return manifest.get("bootstrap", "openfhe")  # stores made before the field: OpenFHE's keys


def key_store_library(manifest: dict):
    """The OpenFHE library (module) whose files the store holds."""
    name = stored_library(manifest)
    try:
        return fhe_library(name)
    except (InputError, PlanError) as exc:
        raise KeyStoreError(f"this key store was made with the {name!r} OpenFHE library, which cannot be "
                            f"loaded here: {exc}") from exc


def verified(server_dir: Path, manifest: dict, name: str) -> Path:
    """The path of a server file after checking it against the manifest."""
    path = server_dir / name
    expected = manifest["files"].get(name)
    if expected is None or not path.is_file():
        raise KeyStoreError(f"key store file {path} is missing or not listed in the manifest")
    if sha256_file(path) != expected:
        raise KeyStoreError(f"key store file {path} does not match its sha256 in the manifest (tampered or "
                            "from another key store)")
    return path
