"""What machine a measurement was taken on: speed figures mean something only beside it."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (as lscpu shows it), with its family and model numbers and whether it has
    AVX-512, from /proc/cpuinfo where there is one: hosts that all call themselves "AMD EPYC" have
    differed 1.6x in the reference's speed and less in resnet-fhe's."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if "model name" in fields:
            details = [f"family {fields[k]}" if k == "cpu family" else f"model {fields[k]}"
                       for k in ("cpu family", "model") if k in fields]
            if "avx512f" in fields.get("flags", "").split():
                details.append("AVX-512")
            return f"{fields['model name']} ({', '.join(details)})" if details else fields["model name"]
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_name(threads: int) -> str:
    return f"{cpu_model()}, {threads} threads"


def cost_table_path(cache: Path, machine: str, preset: str, bootstrap_slots: list[int]) -> Path:
    """Where the op costs fitted on `machine` for `preset` are kept (plan.timing.OpCosts), one table per
    bootstrap slot count: the fit counts bootstraps, and one at 32,768 slots costs 1.5x one at 16,384."""
    slots = "-".join(map(str, bootstrap_slots)) or "none"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{machine}-{preset}-bootstrap-{slots}").strip("-").lower()
    return cache / "costs" / f"{slug}.json"
