"""Ciphertext files: a folder with one OpenFHE binary per ciphertext and a header that ties them to a
plan and a register, so a server never evaluates a ciphertext made for another model or key store. The
header also says how many images the query holds (a plan may pack several; a short query is padded), so
the client keeps only those when it decrypts the answer.

A query may also carry pixels in the clear (`clear.npy`, hashed in the header): Jia et al.'s selective
encryption, where only some chunks of an image are encrypted and the server adds the rest, as a CKKS
plaintext, before the first layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from resnet_fhe.hashing import sha256_file
from resnet_fhe.runtime.keystore import KeyStoreError

HEADER = "header.json"
CLEAR = "clear.npy"


def write_ciphertexts(folder: Path, cts: list, register: str, store_id: str, fhe, images: int = 1,
                      clear: np.ndarray | None = None) -> None:
    """`fhe`: the OpenFHE library the ciphertexts come from (key_store_library: the store's); `clear`:
    the query's plaintext pixels, if it carries any."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLEAR).unlink(missing_ok=True)
    files = {}
    for index, ct in enumerate(cts):
        path = folder / f"ct{index}.bin"
        if not fhe.SerializeToFile(str(path), ct, fhe.BINARY):
            raise KeyStoreError(f"could not write ciphertext {path}")
        files[path.name] = sha256_file(path)
    header = {"register": register, "store_id": store_id, "images": images, "files": files}
    if clear is not None:
        np.save(folder / CLEAR, np.asarray(clear, dtype=np.float64))
        header["clear"] = sha256_file(folder / CLEAR)
    (folder / HEADER).write_text(json.dumps(header, indent=1))


def query_images(folder: Path) -> int:
    """How many images a ciphertext folder's query holds (its header says; 1 for older folders)."""
    try:
        return int(json.loads((Path(folder) / HEADER).read_text()).get("images", 1))
    except (OSError, ValueError) as exc:
        raise KeyStoreError(f"{folder} is not a ciphertext folder ({exc})") from exc


def read_ciphertexts(folder: Path, register: str, store_id: str, fhe) -> list:
    header_path = folder / HEADER
    if not header_path.is_file():
        raise KeyStoreError(f"{folder} is not a ciphertext folder (no {HEADER})")
    header = json.loads(header_path.read_text())
    if header.get("store_id") != store_id:
        raise KeyStoreError(f"{folder} was encrypted for another key store or plan")
    if header.get("register") != register:
        raise KeyStoreError(f"{folder} holds '{header.get('register')}', expected '{register}'")
    cts = []
    for name, digest in header["files"].items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            raise KeyStoreError(f"ciphertext {path} is missing or does not match its header (tampered?)")
        ct, ok = fhe.DeserializeCiphertext(str(path), fhe.BINARY)
        if not ok:
            raise KeyStoreError(f"ciphertext {path} could not be read")
        cts.append(ct)
    return cts


def read_clear_part(folder: Path) -> np.ndarray | None:
    """The query's pixels sent in the clear, or None when it encrypted them all."""
    header = json.loads((Path(folder) / HEADER).read_text())
    if "clear" not in header:
        return None
    path = Path(folder) / CLEAR
    if not path.is_file() or sha256_file(path) != header["clear"]:
        raise KeyStoreError(f"{path} is missing or does not match its header (tampered?)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a readable array ({exc})") from exc
