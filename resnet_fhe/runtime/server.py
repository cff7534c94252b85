"""The server: evaluates a plan on ciphertext files with the key store's public part only.

It holds one phase's keys at a time: before an op it loads that op's rotation keys (or the bootstrap
keys and precomputations of its slot count) and drops whatever the previous phase used, so peak memory
is set by the largest phase rather than by all keys together.
"""

from __future__ import annotations

from pathlib import Path

from resnet_fhe.backends.openfhe_backend import OpenFHEBackend
from resnet_fhe.plan.ops import Bootstrap
from resnet_fhe.plan.plan import Plan
from resnet_fhe.runtime.ciphertexts import read_ciphertexts, write_ciphertexts
from resnet_fhe.runtime.keystore import KeyStoreError, read_manifest, verified


class PhaseKeys:
    """Loads and drops evaluation keys around each op."""

    def __init__(self, server: Server):
        self.server = server
        self.loaded: str | None = None

    def load(self, op) -> None:
        import openfhe

        server, cc = self.server, self.server.context
        wanted = f"bootstrap/{op.slots}.bin" if isinstance(op, Bootstrap) else server.manifest["phases"].get(op.name)
        if wanted is None or wanted == self.loaded:
            return
        self.drop()
        path = str(verified(server.server_dir, server.manifest, wanted))
        if isinstance(op, Bootstrap):
            cc.EvalBootstrapSetup(list(server.plan.params.level_budget), [0, 0], op.slots)
            ok = openfhe.DeserializeEvalBootstrapKey(path, openfhe.BINARY, cc, server.manifest["key_tag"], op.slots)
        else:
            ok = cc.DeserializeEvalAutomorphismKey(path, openfhe.BINARY)
        if not ok:
            raise KeyStoreError(f"could not load evaluation keys from {path}")
        self.loaded = wanted

    def drop(self) -> None:
        if self.loaded is None:
            return
        self.server.context.ClearEvalAutomorphismKeys()
        if self.loaded.startswith("bootstrap/"):
            self.server.context.ClearBootstrapPrecom()
        self.loaded = None


class Server:
    def __init__(self, server_dir: Path):
        import openfhe

        self.server_dir = Path(server_dir)
        self.manifest = read_manifest(self.server_dir)
        verified(self.server_dir, self.manifest, "plan.npz")
        self.plan = Plan.load(verified(self.server_dir, self.manifest, "plan.json"))
        context_path = verified(self.server_dir, self.manifest, "context.bin")
        self.context, ok = openfhe.DeserializeCryptoContext(str(context_path), openfhe.BINARY)
        mult = verified(self.server_dir, self.manifest, "mult_key.bin")
        openfhe.ClearEvalMultKeys()  # OpenFHE's key cache is per process: this server owns it
        if not ok or not self.context.DeserializeEvalMultKey(str(mult), openfhe.BINARY):
            raise KeyStoreError(f"could not read the context or relinearisation key in {self.server_dir}")
        self.backend = OpenFHEBackend(self.plan, self.context)

    def infer(self, input_folder: Path, output_folder: Path, guard=None) -> None:
        cts = read_ciphertexts(Path(input_folder), self.plan.input, self.manifest["store_id"])
        keys = PhaseKeys(self)
        try:
            result = self.backend.run(cts, guard=guard, keys=keys)
        finally:
            keys.drop()
        write_ciphertexts(Path(output_folder), result, self.plan.output, self.manifest["store_id"])
