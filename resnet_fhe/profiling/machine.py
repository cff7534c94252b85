"""What machine a measurement was taken on: speed figures mean something only beside it."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (as lscpu shows it), from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_name(threads: int) -> str:
    return f"{cpu_model()}, {threads} threads"


def cost_table_path(cache: Path, machine: str, preset: str) -> Path:
    """Where the op costs fitted on `machine` for `preset` are kept (plan.timing.OpCosts)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{machine}-{preset}").strip("-").lower()
    return cache / "costs" / f"{slug}.json"
