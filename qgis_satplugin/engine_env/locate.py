"""Which engine runs the steps: the user's choice, the managed one, or QGIS's own Python.

In this order:

1. the environment variable ``SATPLUGIN_ENGINE_PYTHON`` (batch jobs, CI);
2. the Processing setting *Engine Python interpreter* (Options > Processing > Providers):
   the ``python`` of any environment where ``satplugin-engine`` is installed;
3. the managed engine, a virtual environment in the QGIS profile that
   ``satplugin:installengine`` creates;
4. QGIS's own Python, when it has the engine's packages itself (a developer's environment):
   the steps then run in QGIS's process, as the tests and ``make demo`` do.

An interpreter that is not there, or whose engine is another version than the plugin's,
is refused with one sentence that says what to do.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import SatPluginError

ENGINE_PYTHON_VARIABLE = "SATPLUGIN_ENGINE_PYTHON"
# The managed engine's folder inside the QGIS profile.
MANAGED_FOLDER = "satplugin-engine"
# What QGIS's own Python must import to run the steps in QGIS's process.
IN_PROCESS_PACKAGES = ("rasterio", "shapely", "pyproj", "pyogrio", "pandas", "numba")
NOT_INSTALLED = "This step needs the plugin's engine, which is not installed"
INSTALL_ADVICE = (
    "install it with the Processing Toolbox's Sentinel-2 ML datasets > 0 · Engine > Install or update the engine "
    "(or: qgis_process run satplugin:installengine), or choose the Python of an environment where "
    "satplugin-engine is installed in Options > Processing > Providers"
)


class EngineMissing(SatPluginError):
    """No usable engine; the message is the one sentence the user sees."""


@dataclass(frozen=True)
class Engine:
    """Where the steps run: ``python`` (a child process of that interpreter), or None for this process."""

    python: Optional[str]
    origin: str  # says where the choice came from, for the log
    managed_folder: Optional[Path] = None  # the managed engine's folder, held in use while a step runs there

    @property
    def in_process(self) -> bool:
        return self.python is None


def managed_folder(profile_folder: str | Path) -> Path:
    return Path(profile_folder) / MANAGED_FOLDER


def venv_python(folder: str | Path) -> Path:
    """The interpreter of the virtual environment at ``folder``."""
    folder = Path(folder)
    return folder / "Scripts" / "python.exe" if os.name == "nt" else folder / "bin" / "python"


def find_engine(expected_version: str, *, setting: str = "", profile_folder: str | Path | None = None) -> Engine:
    """The engine to run the steps with, checked; :class:`EngineMissing` with advice when there is none."""
    chosen = os.environ.get(ENGINE_PYTHON_VARIABLE, "").strip()
    origin = f"the environment variable {ENGINE_PYTHON_VARIABLE}"
    if not chosen and setting.strip():
        chosen, origin = setting.strip(), "the Processing setting 'Engine Python interpreter'"
    if chosen:
        check_engine(chosen, expected_version, origin)
        return Engine(chosen, origin)
    if profile_folder is not None:
        managed = venv_python(managed_folder(profile_folder))
        if managed.exists():
            check_engine(str(managed), expected_version, "the managed engine")
            return Engine(str(managed), "the managed engine", managed_folder(profile_folder))
    if all(importlib.util.find_spec(name) is not None for name in IN_PROCESS_PACKAGES):
        return Engine(None, "QGIS's own Python, which has the engine's packages")
    raise EngineMissing(f"{NOT_INSTALLED}: {INSTALL_ADVICE}.")


# (interpreter, its modification time) -> the version its engine reported.
_VERSIONS: dict[tuple[str, float], str] = {}


def engine_version(python: str, timeout_s: float = 60.0) -> str:
    """The version of the engine installed for ``python`` (asked once per interpreter and install)."""
    path = Path(python)
    key = (str(path), _stamp(path))
    if key not in _VERSIONS:
        answer = subprocess.run(
            [str(path), "-m", "satplugin_engine", "version"],
            capture_output=True, text=True, timeout=timeout_s, env=child_environment(), stdin=subprocess.DEVNULL,
            **no_console_window(),
        )
        if answer.returncode != 0:
            raise EngineMissing(f"{path} has no satplugin-engine ({_last_line(answer.stderr)})")
        try:
            _VERSIONS[key] = str(json.loads(answer.stdout.strip().splitlines()[-1])["version"])
        except (IndexError, TypeError, KeyError, ValueError):
            raise EngineMissing(f"{path} did not answer as satplugin-engine does ({_last_line(answer.stdout)})") from None
    return _VERSIONS[key]


def check_engine(python: str, expected_version: str, origin: str) -> None:
    advice = INSTALL_ADVICE if origin == "the managed engine" else _chosen_advice(origin, expected_version)
    if not Path(python).is_file():
        raise EngineMissing(f"The engine's Python set by {origin}, {python}, does not exist; {advice}.")
    try:
        found = engine_version(python)
    except EngineMissing as exc:
        raise EngineMissing(f"The Python set by {origin} cannot run the engine: {exc}; {advice}.") from None
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        raise EngineMissing(f"The engine's Python set by {origin}, {python}, does not answer ({exc}).") from None
    if found != expected_version:
        forget_versions()  # asked again next time: the user may be updating that environment now
        raise EngineMissing(
            f"The engine at {python} is version {found}, but this plugin is version {expected_version}: "
            "update it with Install engine (qgis_process run satplugin:installengine)"
            + (" or pip install the plugin's engine_wheel/satplugin_engine-" + expected_version + "-*.whl into that environment"
               if origin != "the managed engine" else "")
            + "."
        )


def _chosen_advice(origin: str, expected_version: str) -> str:
    """What to do when the interpreter the user chose has no engine: install it there, or stop choosing it."""
    stop = (f"unset {ENGINE_PYTHON_VARIABLE}" if ENGINE_PYTHON_VARIABLE in origin else
            "clear Options > Processing > Providers > Sentinel-2 ML datasets > Engine Python interpreter")
    return (f"pip install the plugin's engine_wheel/satplugin_engine-{expected_version}-*.whl[all] into that "
            f"environment, or {stop} to use the managed engine (qgis_process run satplugin:installengine)")


def forget_versions() -> None:
    """Forget the versions asked so far (after an install, update or removal)."""
    _VERSIONS.clear()


def child_environment(extra: dict | None = None) -> dict:
    """The environment of an engine process: QGIS's, without what points Python at QGIS's packages."""
    # QGIS's GDAL and PROJ data and plugins are for QGIS's own libraries, not the engine's wheels.
    dropped = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONNOUSERSITE", "GDAL_DATA", "GDAL_DRIVER_PATH",
               "PROJ_LIB", "PROJ_DATA")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    # The engine's own site-packages only: a user site of QGIS's Python must not shadow its numpy.
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def no_console_window() -> dict:
    """Popen arguments that keep a child from opening a console window on Windows."""
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if os.name == "nt" else {}


def base_interpreter() -> Path:
    """QGIS's own Python interpreter as a program, to create the managed environment with.

    Inside QGIS ``sys.executable`` is often the QGIS program itself (``qgis-bin.exe`` on
    Windows, ``qgis_process`` on Linux); the interpreter is found under ``sys.base_prefix``:
    ``bin/python3.X`` on Linux and in macOS's QGIS.app, ``python.exe`` on Windows (OSGeo4W's
    ``apps/Python3X``).
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.base_prefix)
    if os.name == "nt":
        candidates = [prefix / "python.exe", prefix / "python3.exe"]
    else:
        candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    if Path(sys.executable).name.lower().startswith("python"):
        candidates.append(Path(sys.executable))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EngineMissing(
        f"QGIS's Python interpreter was not found under {prefix}; create an environment yourself "
        "(python -m venv, then pip install of the plugin's engine_wheel/satplugin_engine-*.whl[all]) and choose its Python in Options > Processing > Providers."
    )


def _stamp(path: Path) -> float:
    try:
        return path.lstat().st_mtime  # the venv's own link: a reinstall makes a new one
    except OSError:
        return 0.0


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
