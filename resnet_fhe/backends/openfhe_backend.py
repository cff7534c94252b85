"""Executes a plan under real CKKS encryption with OpenFHE: the openfhe-python 1.6.1 wheel, or OpenFHE
built from source as resnet_fhe._native (fhe_library), which binds the same calls under the same names.

Every op keeps the simulator's slot semantics: EvalRotate(ct, k) moves slot p + k to p; a ciphertext
encrypting an n-periodic vector is tagged with n slots (SetSlots), which is what bootstrapping and
decryption read.

This module holds the evaluation and a single-process key setup (tests, local runs); resnet_fhe.runtime
splits keys between a client and a server that loads them per phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from resnet_fhe.backends.bootstrapping import MemoryStageKeys, OpenFHEBootstrap, StreamedBootstrap
from resnet_fhe.backends.chebyshev import evaluate_series, series_depth
from resnet_fhe.errors import DecryptionError, InputError, PlanError
from resnet_fhe.plan.cost import linear_group_size
from resnet_fhe.plan.layout import pad_images
from resnet_fhe.plan.ops import (
    BOOTSTRAP_HEADROOM,
    PAIR_IN,
    REAL,
    AddTensors,
    Bootstrap,
    ChangeCarrier,
    LinearTransform,
    Polynomial,
    RotateSum,
    carrier_factors,
    input_carriers,
    last_readers,
    op_inputs,
    rotation_index,
)
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Plan

LIBRARIES = ("openfhe", "native")


def fhe_library(name: str = "openfhe"):
    """The OpenFHE binding a context comes from: "openfhe" (the PyPI wheel, CPython 3.10 on Linux x86_64)
    or "native" (resnet_fhe._native, OpenFHE built from source by CMakeLists.txt: `make native`). Both
    expose the calls this module makes under the same names; a context's objects never mix with the other's."""
    if name == "openfhe":
        try:
            import openfhe
        except ImportError as exc:  # only on platforms without the 3.10 wheel
            raise PlanError("the OpenFHE backend needs the openfhe package (CPython 3.10, Linux x86_64); "
                            "elsewhere build the native one (`make native`) and choose it") from exc
        return openfhe
    if name == "native":
        try:
            from resnet_fhe import _native
        except ImportError as exc:
            raise PlanError("the native backend is not built for this interpreter: run `make native` "
                            f"(CMake, a C++17 compiler and pybind11; it builds OpenFHE once) ({exc})") from exc
        return _native
    raise InputError(f"unknown OpenFHE library {name!r}: choose one of {', '.join(LIBRARIES)}")


def build_context(params: CkksParameters, complex_slots: bool = False, library: str = "openfhe"):
    """A CKKS context for the preset from `library` (fhe_library); OpenFHE itself checks the HE-standard
    security level.

    `complex_slots` sets OpenFHE's COMPLEX data type: under the default (REAL) decryption drops the
    slots' imaginary parts, which a complex-paired bootstrap (two real ciphertexts as a + ib) carries."""
    fhe = fhe_library(library)
    settings = fhe.CCParamsCKKSRNS()
    if complex_slots:
        settings.SetCKKSDataType(fhe.COMPLEX)
    settings.SetMultiplicativeDepth(params.multiplicative_depth)
    settings.SetScalingModSize(params.scale_bits)
    settings.SetFirstModSize(params.first_mod_bits)
    settings.SetNumLargeDigits(params.num_large_digits)
    settings.SetScalingTechnique(fhe.FLEXIBLEAUTO)
    settings.SetKeySwitchTechnique(fhe.HYBRID)
    settings.SetSecretKeyDist(getattr(fhe, params.secret_key_dist))
    settings.SetSecurityLevel(getattr(fhe, params.security))
    settings.SetRingDim(params.ring_dim)
    settings.SetBatchSize(params.max_slots)
    context = fhe.GenCryptoContext(settings)
    for feature in (fhe.PKE, fhe.KEYSWITCH, fhe.LEVELEDSHE, fhe.ADVANCEDSHE, fhe.FHE):
        context.Enable(feature)
    return context


def plan_rotation_keys(plan: Plan) -> list[int]:
    keys: set[int] = set()
    for op in plan.ops:
        keys |= op.rotation_keys()
    return sorted(keys)


def rotation_key_towers(plan: Plan) -> dict[int, int]:
    """The most RNS towers each of the plan's rotation keys meets, which is all a key made for the levels
    it is used at needs (the native build makes just those: RotationKeysAtTowers). Registers are stored
    rescaled with their producer's level_out (the input with plan.input_levels), i.e. level_out + 1
    towers, and no op's rotations see more than its input has."""
    stored = {plan.input: plan.input_levels}
    for op in plan.ops:
        stored[op.output] = max(stored.get(op.output, 0), op.level_out)
    towers: dict[int, int] = {}
    for op in plan.ops:
        for index in op.rotation_keys():
            needed = max(stored[name] for name in op_inputs(op)) + 1
            towers[index] = max(towers.get(index, 0), needed)
    return towers


def streams_bootstrap_keys(library: str) -> bool:
    """Whether `library` bootstraps with resnet-fhe's streamed bootstrap (bootstrapping.StreamedBootstrap:
    the native build) rather than OpenFHE's EvalBootstrap (the wheel). The native build's OpenFHE 1.5.1
    EvalBootstrap is also wrong with the presets' baby steps: dim1 (8, 4) at N = 2^16 and 16,384 slots
    returns noise (bench/bootstrap_precision.py --backend native --openfhe-bootstrap)."""
    return library == "native"


def setup_bootstrap(context, params: CkksParameters, slots: int, precompute: bool = True) -> None:
    """OpenFHE's bootstrap setup for `slots` with the preset's level budget, baby steps and correction
    factor (CkksParameters says what each buys). Key generation passes precompute=False: the encoded
    transforms (gigabytes) are needed only to evaluate."""
    context.EvalBootstrapSetup(list(params.level_budget), list(params.bootstrap_dim1), slots,
                               params.bootstrap_correction_factor, precompute)


def clear_bootstrap_setup(context) -> None:
    """Drops the context's bootstrap precomputation (the encoded transforms: gigabytes) where the library
    can: OpenFHE 1.5.1, which the native build uses, has no call for it, so there it stays until the
    context goes (plans bootstrap at one slot count per run, so it is never held twice)."""
    if hasattr(context, "ClearBootstrapPrecom"):
        context.ClearBootstrapPrecom()


@dataclass
class KeySet:
    """All keys in one process: what a test or a local benchmark uses; `bootstrapper` is what the
    backend bootstraps with (OpenFHEBackend's argument of that name)."""

    context: object
    public_key: object
    secret_key: object
    bootstrapper: OpenFHEBootstrap | StreamedBootstrap


def generate_keys(plan: Plan, library: str = "openfhe") -> KeySet:
    """Every key of `plan` in one process. Streamed bootstrap keys are made first, while the context's key
    table is empty (OpenFHE skips rotations it already holds a key for)."""
    context = build_context(plan.params, complex_slots=plan.complex_slots, library=library)
    slot_counts = plan.bootstrap_slot_counts()
    pair = context.KeyGen()
    context.EvalMultKeyGen(pair.secretKey)
    if streams_bootstrap_keys(library):
        stage_keys = MemoryStageKeys(context, plan.params, pair.secretKey, slot_counts)
        bootstrapper = StreamedBootstrap(context, plan.params, stage_keys)
        context.EvalRotateKeyGen(pair.secretKey, plan_rotation_keys(plan))
    else:
        for slots in slot_counts:
            setup_bootstrap(context, plan.params, slots)
        context.EvalRotateKeyGen(pair.secretKey, plan_rotation_keys(plan))
        for slots in slot_counts:
            context.EvalBootstrapKeyGen(pair.secretKey, slots)
        bootstrapper = OpenFHEBootstrap(context)
    return KeySet(context, pair.publicKey, pair.secretKey, bootstrapper)


def _check_carriers(plan: Plan) -> None:
    """What the backend relies on and the compiler guarantees: known carriers, real polynomial outputs
    (a series cannot apply a factor) and a real output register (decryption reads real parts)."""
    for op in plan.ops:
        carrier_factors(op.carrier, 0)  # raises PlanError on an unknown carrier
        if isinstance(op, Polynomial | RotateSum) and op.carrier != REAL:
            raise PlanError(f"{op.name}: a {op.kind} op cannot output carrier {op.carrier}")
    last = next((op for op in reversed(plan.ops) if op.output == plan.output), None)
    if last is not None and last.carrier != REAL:
        raise PlanError(f"the plan's output {plan.output} carries {last.carrier}; decryption needs it real")


class OpenFHEBackend:
    """Evaluates a plan on ciphertexts; needs the context with evaluation keys loaded, never the secret key."""

    def __init__(self, plan: Plan, context: object, rescale_registers: bool = True, own_series: bool = True,
                 bootstrapper: OpenFHEBootstrap | StreamedBootstrap | None = None):
        """`bootstrapper` bootstraps (default: OpenFHE's EvalBootstrap, keys in the context's table).
        `rescale_registers=False` stores registers as earlier versions did (unrescaled products, towers
        dropped only above the plan's levels), `own_series=False` evaluates every Chebyshev series with
        OpenFHE's EvalChebyshevSeries: for measuring what each buys, never for real use."""
        self.plan, self.cc = plan, context
        self.bootstrapper = OpenFHEBootstrap(context) if bootstrapper is None else bootstrapper
        self.own_series = own_series
        self.order = context.GetCyclotomicOrder()
        self.rescale_registers = rescale_registers
        # What each op's inputs carry (plan/ops.py): fixed by the plan, so worked out (and checked) once.
        self.carriers_in = {id(op): carriers for op, carriers in
                            zip(plan.ops, input_carriers(plan.ops, plan.input), strict=True)}
        _check_carriers(plan)

    def levels_left(self, ct: object) -> int:
        """Levels a ciphertext can still spend: its RNS towers beyond the first, less the rescale that an
        unrescaled product (noise scale degree 2) still owes. OpenFHE's GetLevel counts towers dropped."""
        return self.plan.params.multiplicative_depth - ct.GetLevel() - (ct.GetNoiseScaleDeg() - 1)

    def trim(self, ct: object, levels: int) -> object:
        """`ct` rescaled, with the towers above `levels` levels dropped (Compress: under FLEXIBLEAUTO
        LevelReduce does nothing). Every register is stored this way: stored with their products still
        unrescaled, the first layers of ResNet20 ran 1.7-3x slower at 128 bits, bootstraps included
        (`bench/pipeline_timing.py --unrescaled`)."""
        degree = 1 if self.rescale_registers else ct.GetNoiseScaleDeg()
        if self.levels_left(ct) > levels or ct.GetNoiseScaleDeg() > degree:
            return self.cc.Compress(ct, levels + degree, degree)
        return ct

    def _input_plaintexts(self, images: np.ndarray) -> list[object]:
        """(C, H, W) or (n, C, H, W) pixels in [0, 1] -> the plan's input register as CKKS plaintexts,
        encoded at the level the input is encrypted at; a short query padded (pad_images)."""
        register = self.plan.registers[self.plan.input]
        images = np.asarray(images, dtype=np.float64)
        images = images[None] if images.ndim == 3 else images
        if not 1 <= len(images) <= self.plan.images_per_query:
            raise InputError(f"a query holds 1 to {self.plan.images_per_query} images, not {len(images)}")
        packed = register.to_slots(pad_images(self.plan.prepare_input(images), self.plan.images_per_query))
        slots = register.layout.slots
        level = self.plan.params.multiplicative_depth - self.plan.input_levels
        return [self.cc.MakeCKKSPackedPlaintext(ct[0], 1, level, None, slots) for ct in packed]

    def encrypt(self, images: np.ndarray, public_key: object) -> list[object]:
        """One query: a (C, H, W) image or up to plan.images_per_query images (n, C, H, W) of pixels in
        [0, 1] -> the plan's input ciphertexts (client side), encrypted with the levels the first ops need
        (plan.input_levels), not the whole modulus chain. A query with fewer images is padded (pad_images)."""
        return [self.cc.Encrypt(public_key, plaintext) for plaintext in self._input_plaintexts(images)]

    def add_clear_input(self, cts: list[object], images: np.ndarray) -> list[object]:
        """The input ciphertexts plus pixels the client sent in the clear (server side, no key): for an
        image whose encrypted and clear pixels are disjoint, the sum encrypts the whole image, and every
        layer from the first on computes what it computes on an image encrypted whole."""
        plaintexts = self._input_plaintexts(images)
        if len(plaintexts) != len(cts):
            raise InputError(f"the clear pixels fill {len(plaintexts)} input ciphertexts, the query has {len(cts)}")
        return [self.cc.EvalAdd(ct, plaintext) for ct, plaintext in zip(cts, plaintexts, strict=True)]

    def decrypt(self, cts: list[object], secret_key: object) -> np.ndarray:
        """A query's output ciphertexts -> (images per query, outputs): each image's flattened output
        tensor in true units, a padded query's copies included (client side)."""
        register = self.plan.registers[self.plan.output]
        arrays = []
        for ct in cts:
            try:
                plaintext = self.cc.Decrypt(ct, secret_key)
            except RuntimeError as exc:  # OpenFHE's decoding check on the error's size
                raise DecryptionError(f"OpenFHE could not decode the result ({str(exc).strip()}): the "
                                      "evaluation's error grew too large for these parameters on this "
                                      "OpenFHE library") from exc
            plaintext.SetLength(register.layout.slots)
            arrays.append(np.array(plaintext.GetRealPackedValue())[None])
        values = register.from_slots(arrays)
        return values.reshape(len(values), -1)

    def run(self, cts: list[object], guard=None, keys=None) -> list[object]:
        """One query's output ciphertexts; see run_batch."""
        return self.run_batch([cts], guard=guard, keys=keys)[0]

    def run_batch(self, batch: list[list[object]], guard=None, keys=None, resume=None,
                  after_op=None) -> list[list[object]]:
        """The output ciphertexts of several queries (each of plan.images_per_query images), evaluated op by
        op across the batch.

        Op-major order is what makes a batch cheaper than separate runs: each phase's keys (gigabytes for
        bootstrapping, tens of seconds to load) are loaded once per batch, not once per query. Registers
        are dropped after their last reader, so a batch holds only the live tensors of each query.
        `guard` (a profiling.MemoryGuard) is told before and after every op and how long its keys took;
        `keys` (the server's PhaseKeys) loads each op's evaluation keys first. Without it every key must
        already be in the context. `resume` = (next op, registers per query) continues a stopped run from
        a checkpoint; `after_op(next op, registers)` is called after every op (to write checkpoints).
        """
        last_reader = last_readers(self.plan.ops)
        start, registers = resume if resume is not None else (0, [{self.plan.input: cts} for cts in batch])
        for index, op in enumerate(self.plan.ops):
            if index < start:
                continue
            if guard is not None:
                guard.begin(op.layer)
            if keys is not None:
                started = time.perf_counter()
                keys.load(op)
                if guard is not None:
                    guard.note_key_load(time.perf_counter() - started)
            slots = self.plan.registers[op.output].layout.slots
            for query, result in zip(registers, self.evaluate_op(op, registers), strict=True):
                result = [self.trim(ct, op.level_out) for ct in result]
                for ct in result:
                    ct.SetSlots(slots)
                    self._check_levels(op, ct)
                query[op.output] = result
                for name in op_inputs(op):
                    if last_reader[name] == index and name != self.plan.output:
                        del query[name]
            if guard is not None:
                guard.end(op)
            if after_op is not None:
                after_op(index + 1, registers)
        if guard is not None:
            guard.finish()
        return [query[self.plan.output] for query in registers]

    def _check_levels(self, op, ct: object) -> None:
        """Every register holds exactly the levels the plan gives it (trim stores it rescaled): spare towers
        or an unrescaled product slow the ops that read it (see trim), fewer levels would fail later."""
        if self.levels_left(ct) != op.level_out:
            raise PlanError(f"{op.name}: its output has {self.levels_left(ct)} levels left where the plan "
                            f"expects {op.level_out} (plan and backend disagree on level accounting)")

    def evaluate_op(self, op, registers: list[dict[str, list[object]]]) -> list[list[object]]:
        """One op's output ciphertexts for each query, given each query's registers. Registers keep their
        values, though a linear transform may rescale its input ciphertexts in place."""
        if isinstance(op, LinearTransform):
            return self._linear(op, [query[op.input] for query in registers])
        if isinstance(op, Bootstrap):
            return self._bootstrap(op, [query[op.input] for query in registers], self.carriers_in[id(op)][op.input])
        return [self._apply(op, query) for query in registers]

    def _apply(self, op, registers: dict[str, list[object]]) -> list[object]:
        carriers = self.carriers_in[id(op)]
        if isinstance(op, Polynomial):
            factors = carrier_factors(carriers[op.input], op.ciphertexts)
            return [self._polynomial(op, ct, factor) for ct, factor in zip(registers[op.input], factors, strict=True)]
        if isinstance(op, AddTensors):
            if any(carriers[name] != op.carrier for name in op.inputs):
                raise PlanError(f"{op.name} adds registers of different carriers {carriers} (a compiler bug)")
            return [self.cc.EvalAdd(a, b) for a, b in
                    zip(registers[op.inputs[0]], registers[op.inputs[1]], strict=True)]
        if isinstance(op, ChangeCarrier):  # on copies cut to the levels it needs (the register has more)
            ratios = carrier_factors(op.carrier, op.ciphertexts) / carrier_factors(carriers[op.input], op.ciphertexts)
            return [self._times(self.trim(ct, op.level_out + op.levels), ratio) for ct, ratio in
                    zip(registers[op.input], ratios, strict=True)]
        if isinstance(op, RotateSum):
            if carriers[op.input] != REAL:
                raise PlanError(f"{op.name} sums a register carrying {carriers[op.input]} (a compiler bug)")
            result = list(registers[op.input])
            for step in op.steps:
                index = rotation_index(step, op.slots)
                result = [self.cc.EvalAdd(ct, self.cc.EvalRotate(ct, index)) for ct in result]
            return result
        raise PlanError(f"the OpenFHE backend has no rule for {type(op).__name__}")

    def _bootstrap(self, op: Bootstrap, batch: list[list[object]], carrier: str) -> list[list[object]]:
        """Each query's ciphertexts refreshed, all of the batch in one call of the bootstrapper (a streamed
        bootstrap loads each stage's keys once for all of them). Paired (carrier pair-in): w = a/sqrt2 +
        i*b/sqrt2 bootstrapped once and split into w + conj(w) = sqrt2*a and w - conj(w) = i*sqrt2*b (conj:
        the bootstrap keys' own conjugation key; compiler/pairing.py)."""
        if carrier != (PAIR_IN if op.paired else REAL):
            raise PlanError(f"{op.name}: a {'paired' if op.paired else 'single'} bootstrap of a register "
                            f"carrying {carrier} (a compiler bug)")
        width = 2 if op.paired else 1
        inputs, counts = [], []
        for cts in batch:
            counts.append(len(range(0, len(cts), width)))
            for i in range(0, len(cts), width):
                ct = cts[i] if width == 1 else self.cc.EvalAdd(cts[i], cts[i + 1])
                ct = self.trim(ct, BOOTSTRAP_HEADROOM)  # the register may keep levels for other readers
                ct.SetSlots(op.slots)
                inputs.append(ct)
        refreshed = self.bootstrapper.bootstrap_many(inputs)
        result, start = [], 0
        for count in counts:
            query = refreshed[start:start + count]
            start += count
            if op.paired:
                split = []
                for ct in query:
                    conjugate = self.bootstrapper.conjugate(ct)
                    split += [self.cc.EvalAdd(ct, conjugate), self.cc.EvalSub(ct, conjugate)]
                query = split
            result.append(query)
        return result

    def _times(self, ct: object, factor: complex) -> object:
        """ct times a constant (one level): a scalar product when real, else a constant complex plaintext."""
        if factor.imag == 0:
            return self.cc.EvalMult(ct, float(factor.real))
        slots = ct.GetSlots()
        return self.cc.EvalMult(ct, self._plaintext(np.full(slots, factor), ct.GetLevel(), slots))

    def _polynomial(self, op: Polynomial, ct: object, factor: complex = 1.0) -> object:
        """sum_k c_k T_k(x); a linear-even series as c_1 x + sum_k c_2k T_k(2x^2 - 1), which equals it
        (T_2k(x) = T_k(2x^2 - 1)) with a series of half the degree. `ct` holds x times `factor` (its
        carrier, linear-even series only): 2x^2 - 1 = (2/factor^2) ct^2 - 1 is then ct^2 - 1 or -ct^2 - 1
        (factor sqrt2 or i*sqrt2), no level more, and c_1 x = (c_1/factor) ct."""
        if op.function == "square" and factor == 1:
            return self.cc.EvalSquare(ct)  # the exact square of TenSEAL-style CNNs: one level
        if not op.linear_even:
            if factor != 1:
                raise PlanError(f"{op.name}: only a linear-even polynomial reads a paired bootstrap's output")
            return self._chebyshev(ct, op.coefficients, op.depth)
        square = self.cc.EvalSquare(ct)
        weight = (2 / factor ** 2).real
        if weight == 2:
            y = self.cc.EvalSub(self.cc.EvalAdd(square, square), 1.0)
        elif abs(abs(weight) - 1) < 1e-12:
            y = self.cc.EvalSub(square if weight > 0 else self.cc.EvalNegate(square), 1.0)
        else:
            raise PlanError(f"{op.name}: no level-free 2x^2 - 1 for carrier factor {factor}")
        even = self._chebyshev(y, op.coefficients[0::2], op.depth - 1)
        return self.cc.EvalAdd(even, self._times(ct, complex(op.coefficients[1] / factor)))

    def _chebyshev(self, ct: object, coefficients: list[float], depth: int) -> object:
        """sum_k c_k T_k(ct) in `depth` levels: backends/chebyshev.py's evaluation where it fits them
        (about half of OpenFHE's time at the ReLU degrees), else OpenFHE's series (which halves c_0)."""
        if self.own_series and series_depth(len(coefficients) - 1) <= depth:
            return evaluate_series(self.cc, ct, np.asarray(coefficients), self.levels_left)
        return self.cc.EvalChebyshevSeries(ct, [2 * coefficients[0], *coefficients[1:]], -1.0, 1.0)

    def _plaintext(self, values: np.ndarray, level: int, slots: int):
        """Real values as doubles; complex ones (carriers) as complex numbers (a COMPLEX context)."""
        dtype = np.complex128 if np.iscomplexobj(values) else np.float64
        return self.cc.MakeCKKSPackedPlaintext(np.ascontiguousarray(values, dtype=dtype), 1, level, None, slots)

    def _linear(self, op: LinearTransform, batch: list[list[object]]) -> list[list[object]]:
        """The transform of every query's ciphertexts, baby-step giant-step, one plaintext per diagonal.

        Two things make this cheaper than the textbook loop. Each diagonal is encoded once for a group of
        queries (encoding costs as much as the product it feeds; plan.cost.linear_group_size bounds the
        group's rotated copies). And products use EvalMultMutable: under
        FLEXIBLEAUTO an input still carrying an unrescaled product (every conv input does) is rescaled
        before each multiplication, on a copy with EvalMult - 16 to 64 times per baby-step ciphertext -
        but once, in place, with EvalMultMutable. Rescaling keeps the value, so the input registers
        (the babies include the input itself) stay correct for their other readers.
        """
        group = linear_group_size(self.plan.params, op, len(batch))
        if group < len(batch):
            return [out for start in range(0, len(batch), group)
                    for out in self._linear(op, batch[start:start + group])]
        diagonals = self.plan.constants[f"{op.constants}.diagonals"]
        terms = self.plan.constants[f"{op.constants}.terms"]
        biases = self.plan.constants[f"{op.constants}.bias"] if op.has_bias else None
        # Carriers (plan/ops.py) folded into the diagonals: output factor over input factor, per term.
        factor_out = carrier_factors(op.carrier, op.outputs)
        factor_in = carrier_factors(self.carriers_in[id(op)][op.input], op.inputs)
        folded = op.carrier != REAL or self.carriers_in[id(op)][op.input] != REAL
        babies = [self._baby_steps(op, cts) for cts in batch]
        outputs: list[list[object]] = [[] for _ in batch]
        for out_ct in range(op.outputs):
            accumulators: list[object | None] = [None] * len(batch)
            for giant in range(op.giants - 1, -1, -1):
                accumulators = [acc if acc is None else self.cc.EvalRotate(acc, rotation_index(op.giant_step, op.slots))
                                for acc in accumulators]
                rows = np.nonzero((terms[:, 0] == out_ct) & (terms[:, 1] == giant))[0]
                for row in rows:
                    encoded: dict[int, object] = {}  # by level: the first product rescales its source
                    for query, query_babies in enumerate(babies):
                        source = query_babies[int(terms[row, 2])][int(terms[row, 3])]
                        level = source.GetLevel()
                        if level not in encoded:
                            diagonal = diagonals[row]
                            if folded:
                                diagonal = diagonal * (factor_out[out_ct] / factor_in[int(terms[row, 2])])
                            encoded[level] = self._plaintext(diagonal, level, op.slots)
                        product = self.cc.EvalMultMutable(source, encoded[level])
                        if accumulators[query] is None:
                            accumulators[query] = product
                        else:  # in place: the accumulator is this op's own ciphertext
                            self.cc.EvalAddInPlace(accumulators[query], product)
            for query, acc in enumerate(accumulators):
                if acc is None:
                    raise PlanError(f"{op.name}: output ciphertext {out_ct} receives no terms")
                for step in op.fold_steps():
                    acc = self.cc.EvalAdd(acc, self.cc.EvalRotate(acc, rotation_index(step, op.slots)))
                if biases is not None:
                    bias = biases[out_ct] * factor_out[out_ct] if folded else biases[out_ct]
                    acc = self.cc.EvalAdd(acc, self._plaintext(bias, acc.GetLevel(), op.slots_out))
                outputs[query].append(acc)
        return outputs

    def _baby_steps(self, op: LinearTransform, cts: list[object]) -> list[list[object]]:
        """Per input ciphertext, its copies rotated by each baby step; hoisted where the step allows."""
        babies = []
        for ct in cts:
            precomputed = self.cc.EvalFastRotationPrecompute(ct)
            rotated = {0: ct}
            for step in op.babies[1:]:
                index = rotation_index(step.key, op.slots)
                if step.source == 0:  # hoisted: all share one decomposition of ct
                    rotated[step.offset] = self.cc.EvalFastRotation(ct, index, self.order, precomputed)
                else:
                    rotated[step.offset] = self.cc.EvalRotate(rotated[step.source], index)
            babies.append([rotated[step.offset] for step in op.babies])
        return babies
