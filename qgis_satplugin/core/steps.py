"""The steps by name (the five, and the region build above them): where each one's options class and ``run`` live.

One table for everything that runs a step from its name: the engine's command line
(``python -m satplugin_engine run <step> job.json``) and, later, the plugin's engine
process and Dask workers. Modules are imported when a step is asked for, so naming one
step does not load the others' dependencies.
"""
from __future__ import annotations

import functools
import importlib
from typing import Callable

from .errors import SatPluginError

# step name -> (package, options class)
STEPS = {
    "search": ("search", "SearchOptions"),
    "download": ("download", "DownloadOptions"),
    "ground_truth": ("ground_truth", "GroundTruthOptions"),
    "export": ("export", "ExportOptions"),
    "superres": ("superres", "SuperResolveOptions"),
    # Above the five: the chain over a region's MGRS tiles.
    "build_dataset": ("region", "BuildDatasetOptions"),
}


# What a step takes from another step: step name -> {run keyword: (package, name)}. No step imports
# another; the one that needs a service gets it here, where steps are run by name (imported
# only when that step runs; the export uses it only with band_resolution "sharpened").
SERVICES = {
    "export": {"sharpener": ("superres", "ShippedSharpener")},
}


def step(name: str) -> tuple[type, Callable]:
    """The options class and the ``run`` function of the step called ``name`` (its services bound)."""
    if name not in STEPS:
        raise SatPluginError(f"There is no step {name!r}; the steps are {', '.join(STEPS)}.")
    package, options_class = STEPS[name]
    module = importlib.import_module(f".{package}", __package__)
    run = getattr(module, "run")
    services = {keyword: _lazy(pkg, attr) for keyword, (pkg, attr) in SERVICES.get(name, {}).items()}
    if not services:
        return getattr(module, options_class), run

    @functools.wraps(run)  # still called run, with its docstring
    def run_with_services(*args, **kwargs):
        return run(*args, **{**services, **kwargs})
    return getattr(module, options_class), run_with_services


def _lazy(package: str, attribute: str) -> Callable:
    """``package.attribute(...)``, imported only when called: naming a step loads no other step."""
    def call(*args, **kwargs):
        return getattr(importlib.import_module(f".{package}", __package__), attribute)(*args, **kwargs)
    return call


def warm_up_all() -> list[str]:
    """Run the ``warm_up`` of every step that has one (compiling its kernels); return their names."""
    warmed = []
    for name, (package, _) in STEPS.items():
        warm_up = getattr(importlib.import_module(f".{package}", __package__), "warm_up", None)
        if warm_up is not None:
            warm_up()
            warmed.append(name)
    return warmed
