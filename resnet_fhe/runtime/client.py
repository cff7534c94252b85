"""The client: makes the context and every key, keeps the secret key, encrypts images, decrypts logits."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from resnet_fhe.backends.openfhe_backend import (
    OpenFHEBackend,
    build_context,
    plan_rotation_keys,
    setup_bootstrap,
)
from resnet_fhe.errors import InputError
from resnet_fhe.plan.plan import Plan
from resnet_fhe.runtime.ciphertexts import query_images, read_ciphertexts, write_ciphertexts
from resnet_fhe.runtime.heap import release_freed_memory
from resnet_fhe.runtime.keystore import KeyStoreError, read_manifest, verified, write_manifest


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    def __init__(self, server_dir: Path, client_dir: Path):
        import openfhe

        self.server_dir, self.client_dir = Path(server_dir), Path(client_dir)
        self.manifest = read_manifest(self.server_dir)
        self.plan = Plan.load(verified(self.server_dir, self.manifest, "plan.json"))
        context_path = verified(self.server_dir, self.manifest, "context.bin")
        self.context, ok = openfhe.DeserializeCryptoContext(str(context_path), openfhe.BINARY)
        self.public_key, ok_pk = openfhe.DeserializePublicKey(str(self.client_dir / "public_key.bin"), openfhe.BINARY)
        self.secret_key, ok_sk = openfhe.DeserializePrivateKey(str(self.client_dir / "secret_key.bin"), openfhe.BINARY)
        if not (ok and ok_pk and ok_sk):
            raise KeyStoreError(f"could not read the client keys in {self.client_dir}")
        self.backend = OpenFHEBackend(self.plan, self.context)

    @classmethod
    def keygen(cls, plan: Plan, server_dir: Path, client_dir: Path) -> Client:
        """Writes the key store: one file per rotation key, one bootstrap-key file per slot count, the
        secret key only under client_dir (readable by its owner alone)."""
        import openfhe

        started = time.perf_counter()
        server_dir, client_dir = Path(server_dir), Path(client_dir)
        for folder in (server_dir / "rotations", server_dir / "bootstrap", client_dir):
            folder.mkdir(parents=True, exist_ok=True)
        context = build_context(plan.params, complex_slots=plan.complex_slots)
        slot_counts = plan.bootstrap_slot_counts()
        pair = context.KeyGen()
        context.EvalMultKeyGen(pair.secretKey)
        ok = openfhe.SerializeToFile(str(server_dir / "context.bin"), context, openfhe.BINARY)
        ok &= openfhe.SerializeToFile(str(client_dir / "public_key.bin"), pair.publicKey, openfhe.BINARY)
        client_dir.chmod(0o700)
        secret = client_dir / "secret_key.bin"
        secret.touch(mode=0o600)  # created owner-only before the key is written into it
        secret.chmod(0o600)
        ok &= openfhe.SerializeToFile(str(secret), pair.secretKey, openfhe.BINARY)
        ok &= context.SerializeEvalMultKey(str(server_dir / "mult_key.bin"), openfhe.BINARY)
        rotation_keys: dict[str, str] = {}
        for index in plan_rotation_keys(plan):  # one file per key: ops load just the keys they use
            rotation_keys[str(index)] = f"rotations/{'m' if index < 0 else 'p'}{abs(index)}.bin"
            context.ClearEvalAutomorphismKeys()
            context.EvalRotateKeyGen(pair.secretKey, [index])
            ok &= context.SerializeEvalAutomorphismKey(str(server_dir / rotation_keys[str(index)]), openfhe.BINARY)
        tag = pair.secretKey.GetKeyTag()
        covers: dict[str, list[int]] = {}  # slots -> the plan's rotations whose keys bootstrapping has too
        for slots in slot_counts:
            # Keys only: the encoded transforms (gigabytes) are the server's business, so the client's
            # setup skips their precomputation (precompute=False); its peak is then the keys alone.
            context.ClearEvalAutomorphismKeys()
            setup_bootstrap(context, plan.params, slots, precompute=False)
            context.EvalBootstrapKeyGen(pair.secretKey, slots)
            bootstrap_indices = set(context.GetExistingEvalAutomorphismKeyIndices(tag))
            covers[str(slots)] = sorted({index % plan.params.max_slots for index in plan_rotation_keys(plan)
                                         if context.FindAutomorphismIndex(index) in bootstrap_indices})
            ok &= openfhe.SerializeEvalBootstrapKey(str(server_dir / f"bootstrap/{slots}.bin"), openfhe.BINARY,
                                                    context, tag, slots)
            context.ClearBootstrapPrecom()
            release_freed_memory()
        context.ClearEvalAutomorphismKeys()
        if not ok:
            raise KeyStoreError(f"writing the key store under {server_dir} failed")
        plan.save(server_dir / "plan.json")
        store_id = hashlib.sha256((plan.constants_sha256 + tag).encode()).hexdigest()[:32]
        write_manifest(server_dir, {"store_id": store_id, "key_tag": tag, "rotation_keys": rotation_keys,
                                    "bootstrap_slots": slot_counts, "bootstrap_covers": covers,
                                    "params": plan.params.to_dict()})
        _log(f"keygen: {len(rotation_keys)} rotation key files, {len(slot_counts)} bootstrap key files in "
             f"{time.perf_counter() - started:.1f} s")
        return cls(server_dir, client_dir)

    def encrypt(self, images: np.ndarray, folder: Path) -> None:
        """One query into a ciphertext folder: an image (C, H, W) or up to plan.images_per_query images
        (n, C, H, W), raw pixels uint8 or floats already in [0, 1]."""
        layout = self.plan.registers[self.plan.input].layout
        expected = (layout.channels, layout.height, layout.width)
        images = np.asarray(images)
        query = images[None] if images.ndim == 3 else images
        if query.ndim != 4 or query.shape[1:] != expected:
            raise InputError(f"the model takes images of shape {expected}, got {images.shape}")
        if not 1 <= len(query) <= self.plan.images_per_query:
            raise InputError(f"one query holds 1 to {self.plan.images_per_query} images (the plan's packing), "
                             f"got {len(query)}: encrypt them as several queries (--start), or make keys for a "
                             "plan with more images per query (keygen --images-per-query)")
        pixels = query / 255.0 if query.dtype == np.uint8 else query
        if not np.issubdtype(pixels.dtype, np.floating) or pixels.min() < 0 or pixels.max() > 1:
            raise InputError("pixels must be uint8, or floats in [0, 1]")
        cts = self.backend.encrypt(pixels, self.public_key)
        write_ciphertexts(Path(folder), cts, self.plan.input, self.manifest["store_id"], len(query))

    def decrypt(self, folder: Path) -> np.ndarray:
        """A query's answer -> (images in the query, outputs), the padding of a short query dropped."""
        images = query_images(Path(folder))
        if not 1 <= images <= self.plan.images_per_query:
            raise InputError(f"{folder} says it holds {images} images; this plan's queries hold 1 to "
                             f"{self.plan.images_per_query}")
        cts = read_ciphertexts(Path(folder), self.plan.output, self.manifest["store_id"])
        return self.backend.decrypt(cts, self.secret_key)[:images]
