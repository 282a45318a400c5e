"""``DASK_SCHEDULER``: where a step's tasks run, parsed and checked without importing dask."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import SatPluginError

SCHEDULER_HELP = (
    "Where the work runs: empty, in the engine process (as a single run); local:N, a Dask LocalCluster of N worker "
    "processes started for this run from the engine's own Python; tcp://host:port, an existing Dask cluster whose "
    "workers run the same engine version (pip install satplugin-engine==<this version>) and see the same files at "
    "the same paths. The outputs are the same bytes in every case (for super-resolution: when the workers run the same "
    "ONNX Runtime provider as the engine would, e.g. all on the CPU).")
_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"(tcp|tls)://[^\s/:]+:\d{1,5}")


@dataclass(frozen=True)
class Scheduler:
    """``local`` workers started for the run, or the ``address`` of an existing cluster."""

    local_workers: int = 0
    address: str = ""

    def describe(self) -> str:
        if self.local_workers:
            return f"a local Dask cluster of {self.local_workers} worker process{'es' if self.local_workers > 1 else ''}"
        return f"the Dask cluster at {self.address}"


def parse_scheduler(text: Optional[str]) -> Optional[Scheduler]:
    """None for an empty value (run in the engine process), else the :class:`Scheduler`; a bad value is one sentence."""
    text = (text or "").strip()
    if not text:
        return None
    local = _LOCAL.fullmatch(text)
    if local:
        n = int(local.group(1))
        if n < 1:
            raise SatPluginError(f"DASK_SCHEDULER {text!r} asks for no workers; use local:1 or more.")
        return Scheduler(local_workers=n)
    if _ADDRESS.fullmatch(text):
        return Scheduler(address=text)
    raise SatPluginError(
        f"DASK_SCHEDULER {text!r} is not empty, local:N or a scheduler address like tcp://10.0.0.5:8786.")
