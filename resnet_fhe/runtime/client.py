"""The client: makes the context and every key, keeps the secret key, encrypts images, decrypts logits."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from resnet_fhe.backends.bootstrapping import write_stage_keys
from resnet_fhe.backends.openfhe_backend import (
    OpenFHEBackend,
    build_context,
    clear_bootstrap_setup,
    fhe_library,
    plan_rotation_keys,
    rotation_key_towers,
    setup_bootstrap,
    streams_bootstrap_keys,
)
from resnet_fhe.errors import InputError
from resnet_fhe.plan.plan import Plan
from resnet_fhe.runtime.ciphertexts import query_images, read_ciphertexts, write_ciphertexts
from resnet_fhe.runtime.heap import release_freed_memory
from resnet_fhe.runtime.keystore import (
    KeyStoreError,
    bootstrap_key_kind,
    key_store_library,
    read_manifest,
    verified,
    write_manifest,
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    def __init__(self, server_dir: Path, client_dir: Path):
        self.server_dir, self.client_dir = Path(server_dir), Path(client_dir)
        self.manifest = read_manifest(self.server_dir)
        self.fhe = fhe = key_store_library(self.manifest)
        self.plan = Plan.load(verified(self.server_dir, self.manifest, "plan.json"))
        context_path = verified(self.server_dir, self.manifest, "context.bin")
        self.context, ok = fhe.DeserializeCryptoContext(str(context_path), fhe.BINARY)
        self.public_key, ok_pk = fhe.DeserializePublicKey(str(self.client_dir / "public_key.bin"), fhe.BINARY)
        self.secret_key, ok_sk = fhe.DeserializePrivateKey(str(self.client_dir / "secret_key.bin"), fhe.BINARY)
        if not (ok and ok_pk and ok_sk):
            raise KeyStoreError(f"could not read the client keys in {self.client_dir}")
        self.backend = OpenFHEBackend(self.plan, self.context)

    @classmethod
    def keygen(cls, plan: Plan, server_dir: Path, client_dir: Path, library: str = "openfhe") -> Client:
        """Writes the key store: one file per rotation key, one bootstrap-key file per slot count, the
        secret key only under client_dir (readable by its owner alone), all made by `library`
        (fhe_library: the wheel or the native build)."""
        fhe = fhe_library(library)
        started = time.perf_counter()
        server_dir, client_dir = Path(server_dir), Path(client_dir)
        for folder in (server_dir / "rotations", server_dir / "bootstrap", client_dir):
            folder.mkdir(parents=True, exist_ok=True)
        context = build_context(plan.params, complex_slots=plan.complex_slots, library=library)
        slot_counts = plan.bootstrap_slot_counts()
        pair = context.KeyGen()
        context.EvalMultKeyGen(pair.secretKey)
        ok = fhe.SerializeToFile(str(server_dir / "context.bin"), context, fhe.BINARY)
        ok &= fhe.SerializeToFile(str(client_dir / "public_key.bin"), pair.publicKey, fhe.BINARY)
        client_dir.chmod(0o700)
        secret = client_dir / "secret_key.bin"
        secret.touch(mode=0o600)  # created owner-only before the key is written into it
        secret.chmod(0o600)
        ok &= fhe.SerializeToFile(str(secret), pair.secretKey, fhe.BINARY)
        ok &= context.SerializeEvalMultKey(str(server_dir / "mult_key.bin"), fhe.BINARY)
        rotation_keys: dict[str, str] = {}
        tag = pair.secretKey.GetKeyTag()
        streamed = streams_bootstrap_keys(library)
        towers = rotation_key_towers(plan)
        for index in plan_rotation_keys(plan):  # one file per key: ops load just the keys they use
            rotation_keys[str(index)] = f"rotations/{'m' if index < 0 else 'p'}{abs(index)}.bin"
            path = str(server_dir / rotation_keys[str(index)])
            if streamed:  # the native build makes only what its levels read (most convolutions: 2-3 towers)
                ok &= fhe.SerializeKeyMap(path, fhe.RotationKeysAtTowers(pair.secretKey, [index], towers[index]))
                continue
            context.ClearEvalAutomorphismKeys()
            context.EvalRotateKeyGen(pair.secretKey, [index])
            ok &= context.SerializeEvalAutomorphismKey(path, fhe.BINARY)
        covers: dict[str, list[int]] = {}  # slots -> the plan's rotations whose keys bootstrapping has too
        digests: dict[str, str] = {}  # server files hashed as they were written
        for slots in slot_counts:
            context.ClearEvalAutomorphismKeys()
            if streamed:  # one key file per stage, made one stage at a time
                folder = server_dir / f"bootstrap/{slots}"
                written = write_stage_keys(context, plan.params, pair.secretKey, slots, folder)
                digests.update({f"bootstrap/{slots}/{name}": digest for name, digest in written.items()})
                covers[str(slots)] = []  # stage keys never stand in for the plan's rotation keys
                continue
            # Keys only: the encoded transforms (gigabytes) are the server's business, so the client's
            # setup skips their precomputation (precompute=False); its peak is then the keys alone.
            setup_bootstrap(context, plan.params, slots, precompute=False)
            context.EvalBootstrapKeyGen(pair.secretKey, slots)
            bootstrap_indices = set(context.GetExistingEvalAutomorphismKeyIndices(tag))
            covers[str(slots)] = sorted({index % plan.params.max_slots for index in plan_rotation_keys(plan)
                                         if context.FindAutomorphismIndex(index) in bootstrap_indices})
            ok &= fhe.SerializeEvalBootstrapKey(str(server_dir / f"bootstrap/{slots}.bin"), fhe.BINARY,
                                                    context, tag, slots)
            clear_bootstrap_setup(context)
            release_freed_memory()
        context.ClearEvalAutomorphismKeys()
        if not ok:
            raise KeyStoreError(f"writing the key store under {server_dir} failed")
        plan.save(server_dir / "plan.json")
        store_id = hashlib.sha256((plan.constants_sha256 + tag).encode()).hexdigest()[:32]
        write_manifest(server_dir, {"store_id": store_id, "library": library, "key_tag": tag,
                                    "rotation_keys": rotation_keys,
                                    "bootstrap": bootstrap_key_kind(library),
                                    "bootstrap_slots": slot_counts, "bootstrap_covers": covers,
                                    "params": plan.params.to_dict()}, known=digests)
        bootstrap_files = sum(1 for path in (server_dir / "bootstrap").rglob("*") if path.is_file())
        _log(f"keygen: {len(rotation_keys)} rotation key files, {bootstrap_files} bootstrap key files "
             f"({'one per stage, ' if streamed else ''}{len(slot_counts)} slot count(s)) in "
             f"{time.perf_counter() - started:.1f} s")
        return cls(server_dir, client_dir)

    def encrypt(self, images: np.ndarray, folder: Path, encrypted_pixels: np.ndarray | None = None) -> None:
        """One query into a ciphertext folder: an image (C, H, W) or up to plan.images_per_query images
        (n, C, H, W), raw pixels uint8 or floats already in [0, 1].

        `encrypted_pixels`: selective encryption (Jia et al.; imagecrypt.chunk_pixel_mask): a bool mask
        (H, W), or one per image (n, H, W), True where a pixel is encrypted; the other pixels go in the
        clear beside the ciphertexts, and the server can read them."""
        expected = self.plan.image_shape
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
        clear = None
        if encrypted_pixels is not None:
            mask = np.asarray(encrypted_pixels)
            mask = np.broadcast_to(mask, (len(query), *mask.shape[-2:])) if mask.ndim == 2 else mask
            if mask.dtype != bool or mask.shape != (len(query), *expected[1:]):
                raise InputError(f"encrypted_pixels must be a bool mask of shape {expected[1:]} or "
                                 f"{(len(query), *expected[1:])}, got {mask.dtype} {mask.shape}")
            clear = np.where(mask[:, None], 0.0, pixels)
            pixels = np.where(mask[:, None], pixels, 0.0)
        cts = self.backend.encrypt(pixels, self.public_key)
        write_ciphertexts(Path(folder), cts, self.plan.input, self.manifest["store_id"], self.fhe, len(query), clear)

    def decrypt(self, folder: Path) -> np.ndarray:
        """A query's answer -> (images in the query, outputs), the padding of a short query dropped."""
        images = query_images(Path(folder))
        if not 1 <= images <= self.plan.images_per_query:
            raise InputError(f"{folder} says it holds {images} images; this plan's queries hold 1 to "
                             f"{self.plan.images_per_query}")
        cts = read_ciphertexts(Path(folder), self.plan.output, self.manifest["store_id"], self.fhe)
        return self.backend.decrypt(cts, self.secret_key)[:images]
