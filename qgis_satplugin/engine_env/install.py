"""Install, update and remove the managed engine: a virtual environment in the QGIS profile.

No sudo, no compiler, nothing changed in QGIS's own Python: QGIS's interpreter creates a
bare virtual environment (``venv --without-pip``: Debian's QGIS has no ``ensurepip``), a pip
wheel run as a program installs pip and the engine with all its extras from PyPI wheels,
or offline from a wheelhouse folder (``pip download`` of the same). The environment is built
beside the old one and swapped in only once its engine answers with the right version, so
a failed, canceled or killed install leaves the previous engine (or none) as it was.

ONNX Runtime: its CUDA build where the platform has one and an NVIDIA driver is present,
else the CPU build (a wheelhouse decides by what it holds).
"""
from __future__ import annotations

import base64
import glob
import hashlib
import json
import platform
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..core.errors import Canceled, SatPluginError
from ..core.feedback import Feedback
from ..core.locks import InUse, OutputLock, held_by_child
from .locate import base_interpreter, child_environment, engine_version, forget_versions, no_console_window, venv_python

MARKER = "satplugin-engine.json"  # written last into an environment this module made
TRASH = ".removing-"  # in the hidden name a folder has while it is being deleted
PYPI_PIP = "https://pypi.org/pypi/pip/json"
STEP_TIMEOUT_S = 3600.0
# What an install or a removal says while a step runs in the engine, and a step while the engine changes.
STEP_RUNNING = ("A step is running in the engine at {folder} (in this or another QGIS or qgis_process); wait for it "
                "to end, or cancel it, then {what} again. The engine was left as it was.")
ENGINE_CHANGING = "The engine at {folder} is being updated or removed; run the step again once that has finished."


@dataclass(frozen=True)
class EngineSource:
    """What to install: the engine's wheel (in the plugin zip) or a checkout with pyproject.toml."""

    path: Path
    version: str


@dataclass
class InstallPlan:
    """What an install will do, for the dialog and the log."""

    folder: Path
    source: EngineSource
    extra: str  # "all" or "all-gpu"
    wheelhouse: Optional[Path] = None
    wheel_bytes: int = 0  # of the wheelhouse's wheels that will be installed (0: from PyPI)
    packages: list = field(default_factory=list)
    # Variables for the downloads (QGIS's proxy, processing_algs/network_proxy.py), given to pip's
    # environment only; none: the process's own environment decides.
    environment: dict = field(default_factory=dict)

    def describe(self) -> str:
        where = f"from the wheelhouse {self.wheelhouse}" if self.wheelhouse else "from PyPI (https://pypi.org)"
        size = f", {self.wheel_bytes / 1e6:.0f} MB of wheels" if self.wheel_bytes else ", about 250 MB downloaded (CUDA build: about 550 MB)"
        return (
            f"satplugin-engine {self.source.version} with {self.extra_label()} {where}{size}, into {self.folder} "
            "(about 900 MB on disk); QGIS's own Python is not changed."
        )

    def extra_label(self) -> str:
        return "ONNX Runtime's CUDA build" if self.extra == "all-gpu" else "ONNX Runtime's CPU build"


def engine_source(plugin_folder: Path, version: str) -> EngineSource:
    """The engine wheel shipped in the plugin (``engine_wheel/``), or the checkout itself."""
    wheels = sorted((plugin_folder / "engine_wheel").glob(f"satplugin_engine-{version}-*.whl"))
    if wheels:
        return EngineSource(wheels[-1], version)
    if (plugin_folder / "pyproject.toml").is_file():
        return EngineSource(plugin_folder, version)
    raise SatPluginError(f"The plugin folder {plugin_folder} holds no engine wheel (engine_wheel/); reinstall the plugin from its zip.")


# pyproject.toml's requires-python.
ENGINE_PYTHON_MIN = (3, 10)


def plan_install(folder: Path, source: EngineSource, wheelhouse: Optional[Path] = None,
                 python_version: tuple = tuple(sys.version_info[:2])) -> InstallPlan:
    """What to install where; refused before any work where QGIS's Python is older than the engine needs."""
    if tuple(python_version) < ENGINE_PYTHON_MIN:
        have, need = ".".join(map(str, python_version)), ".".join(map(str, ENGINE_PYTHON_MIN))
        raise SatPluginError(
            f"QGIS's Python is {have}, and the engine needs Python {need} or later, so it cannot be installed beside "
            f"QGIS here. Install it into an environment of your own with Python {need}+ (pip install the plugin's "
            "engine_wheel/satplugin_engine-*.whl[all]) and choose that environment's Python in Options > Processing "
            "> Providers > Sentinel-2 ML datasets > Engine Python interpreter."
        )
    if wheelhouse is not None:
        wheelhouse = Path(wheelhouse)
        if not wheelhouse.is_dir():
            raise SatPluginError(f"WHEELHOUSE {wheelhouse} is not a folder.")
        wheels = list(wheelhouse.glob("*.whl"))
        if not any(w.name.startswith("pip-") for w in wheels):
            raise SatPluginError(f"The wheelhouse {wheelhouse} has no pip wheel; make it with: pip download -d {wheelhouse} pip <the plugin's engine_wheel/satplugin_engine-*.whl>[all].")
        gpu = any(w.name.startswith("onnxruntime_gpu-") for w in wheels) and nvidia_gpu_present()
        extra = "all-gpu" if gpu else "all"
        return InstallPlan(folder, source, extra, wheelhouse, sum(w.stat().st_size for w in wheels),
                           sorted(w.name.split("-")[0] for w in wheels))
    return InstallPlan(folder, source, "all-gpu" if gpu_build_available() and nvidia_gpu_present() else "all")


def gpu_build_available() -> bool:
    """ONNX Runtime publishes CUDA wheels for Linux and Windows on x86-64 only."""
    return platform.system() in ("Linux", "Windows") and platform.machine().lower() in ("x86_64", "amd64")


def nvidia_gpu_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def running_in(folder: Path) -> InUse:
    """Held while a step runs in the managed engine at ``folder``: no install or removal replaces it meanwhile
    (Python would import half of one engine and half of the other, or nothing)."""
    return InUse(folder, ENGINE_CHANGING.format(folder=folder))


def _no_step_running(folder: Path, what: str) -> InUse:
    return InUse(folder, STEP_RUNNING.format(folder=folder, what=what), exclusive=True)


def install_engine(plan: InstallPlan, feedback: Feedback | None = None, base_python: Optional[Path] = None) -> str:
    """Build the environment of ``plan`` beside the old one, check it, swap it in; return its version.

    One install (or removal) of a folder at a time: a second one refuses at once. So does an
    install while a step runs in the engine, before any work and again at the swap.
    """
    with OutputLock([plan.folder], what="engine installation") as lock:
        with _no_step_running(plan.folder, "install"):
            pass  # refused now rather than after the download
        return _install(plan, Feedback.of(feedback), base_python, lock)


def _install(plan: InstallPlan, feedback: Feedback, base_python: Optional[Path], lock: OutputLock) -> str:
    folder = plan.folder
    staging = _leftovers(folder)[0]
    try:
        _refuse_link(folder)  # before any download
        _clear_leftovers(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        base = Path(base_python) if base_python else base_interpreter()
        feedback.log(f"Creating the engine's environment with {base} in {staging}")
        _call([str(base), "-m", "venv", "--without-pip", str(staging)], feedback, "creating the environment", held=(lock,))
        feedback.set_progress(0.05)
        pip_wheel = _pip_wheel(plan, staging, feedback)
        python = venv_python(staging)
        command = [str(python), str(pip_wheel / "pip"), "install", "--disable-pip-version-check", "--no-input",
                   "--no-warn-script-location", "--only-binary=:all:"]
        if plan.wheelhouse is not None:
            command += ["--no-index", "--find-links", str(plan.wheelhouse)]
        requirement = f"{plan.source.path}[{plan.extra}]"
        if plan.source.path.is_dir():  # a checkout: built here (setuptools comes from the same index)
            command.remove("--only-binary=:all:")
            command += ["--only-binary=numpy,shapely,rasterio,pyproj,pyogrio,pandas,numba,llvmlite,onnxruntime,onnxruntime-gpu"]
        feedback.log(f"Installing satplugin-engine {plan.source.version} with {plan.extra_label()}")
        _call(command + [str(pip_wheel), requirement], feedback, "installing the engine's packages", progress=(0.1, 0.9),
              environment=plan.environment, held=(lock,))
        forget_versions()
        found = engine_version(str(python))
        if found != plan.source.version:
            raise SatPluginError(f"The new engine reports version {found}, not {plan.source.version}; the old engine was kept.")
        feedback.log("Compiling the rasterizer's kernels (once, so that the first ground truth does not wait for it)")
        _call([str(python), "-m", "satplugin_engine", "warm-up"], feedback, "compiling the engine's kernels",
              progress=(0.9, 0.98), held=(lock,))
        (staging / MARKER).write_text(json.dumps({"version": found, "extra": plan.extra,
                                                  "wheelhouse": str(plan.wheelhouse or ""), "installed": time.time()}))
        with _no_step_running(folder, "install"):
            _swap(staging, folder)
    except OSError as exc:
        _remove_ours(staging, allow_unmarked=True)
        raise SatPluginError(f"The engine could not be installed in {folder} ({exc}); the previous state was kept.") from None
    except BaseException:
        _remove_ours(staging, allow_unmarked=True)
        raise
    forget_versions()
    feedback.set_progress(1.0)
    feedback.log(f"The engine {found} is installed in {folder}.")
    return found


def remove_engine(folder: Path) -> list:
    """Remove the managed engine at ``folder`` (only a folder this module made) and what killed
    installs and removals left beside it (:func:`_leftovers`); the paths removed.

    Refused while a step runs in the engine.
    """
    with OutputLock([folder], what="engine installation"), _no_step_running(folder, "remove it"):
        removed = _clear_leftovers(folder)
        if folder.exists() or folder.is_symlink():
            _remove_ours(folder, allow_unmarked=False)
            removed.insert(0, folder)
    forget_versions()
    return removed


def _clear_leftovers(folder: Path) -> list:
    """Remove what killed installs and removals left beside ``folder``; the paths removed. Call it
    holding the install lock: then no install is running, so these are a killed one's. A previous
    engine that a swap killed between its two renames left as ``.old`` goes back in place first."""
    new, old, *trash = _leftovers(folder)
    if not folder.exists() and not folder.is_symlink() and not old.is_symlink() and (old / MARKER).is_file():
        old.rename(folder)
    removed = []
    for leftover in (new, old, *trash):
        if leftover.exists() or leftover.is_symlink():
            if TRASH in leftover.name and not leftover.is_symlink():
                shutil.rmtree(leftover)  # renamed away by _remove_ours after its check
            else:
                _remove_ours(leftover, allow_unmarked=True)
            removed.append(leftover)
    return removed


def _leftovers(folder: Path) -> list:
    """Where an install builds the new environment, where the old one waits during the swap, and
    the trash folders of removals that were killed (:func:`_remove_ours`)."""
    trash = sorted(folder.parent.glob(f".{glob.escape(folder.name)}*{TRASH}*")) if folder.parent.is_dir() else []
    return [folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old"), *trash]


def installed_version(folder: Path) -> Optional[str]:
    try:
        return json.loads((folder / MARKER).read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _pip_wheel(plan: InstallPlan, staging: Path, feedback: Feedback) -> Path:
    """A pip wheel to run as a program: the wheelhouse's, or PyPI's newest (checked against its sha256)."""
    if plan.wheelhouse is not None:
        wheels = list(plan.wheelhouse.glob("pip-*.whl"))
        if not wheels:
            raise SatPluginError(f"The wheelhouse {plan.wheelhouse} has no pip wheel; nothing was installed.")
        return max(wheels, key=_version_key)
    feedback.log(f"Fetching pip from {PYPI_PIP}")
    opener = _opener_as_pip_goes(plan.environment)
    try:
        with opener.open(PYPI_PIP, timeout=60) as answer:
            release = json.load(answer)
        wheel = next(u for u in release["urls"] if u["packagetype"] == "bdist_wheel")
        target = staging / wheel["filename"]
        # PyPI gives absolute addresses; a mirror of its JSON API may give them relative to the page.
        with opener.open(urllib.parse.urljoin(PYPI_PIP, wheel["url"]), timeout=300) as answer:
            data = answer.read()
    except (OSError, ValueError, KeyError, StopIteration) as exc:  # URLError and timeouts are OSErrors
        raise SatPluginError(
            f"PyPI could not be reached ({exc}); on a machine without internet, give WHEELHOUSE, a folder of wheels. "
            "Nothing was installed."
        ) from None
    if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
        raise SatPluginError("The pip wheel from PyPI does not match its published checksum; nothing was installed.")
    target.write_bytes(data)
    return target


def _opener_as_pip_goes(environment: dict):
    """urllib's opener for the pip download, through the proxy that ``environment`` gives pip.

    Without proxy variables there, the process's own settings hold, as they do for pip.
    """
    proxies = {scheme: environment[f"{scheme.upper()}_PROXY"] for scheme in ("http", "https")
               if f"{scheme.upper()}_PROXY" in environment}
    if not proxies:
        return urllib.request.build_opener()
    return urllib.request.build_opener(_ProxyAsPipUses(proxies, environment.get("NO_PROXY", "")))


class _ProxyAsPipUses(urllib.request.ProxyHandler):
    """urllib's proxy handler with pip's (requests') rules, so that a proxy that lets pip through
    lets this download through too: the user and password are sent encoded in Latin-1 (urllib
    sends UTF-8, which a proxy checks as another password), and the hosts excluded are those of
    the given NO_PROXY, not of this process's environment."""

    def __init__(self, proxies: dict, no_proxy: str):
        self.no_proxy = no_proxy
        self.authorization = {}
        bare = {}
        for scheme, url in proxies.items():
            parts = urllib.parse.urlsplit(url)
            if parts.username is not None:
                user_pass = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
                # network_proxy refuses credentials outside Latin-1 before the installer runs.
                self.authorization[scheme] = "Basic " + base64.b64encode(user_pass.encode("latin-1")).decode("ascii")
            bare[scheme] = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        super().__init__(bare)

    def proxy_open(self, req, proxy, type):  # noqa: A002 (urllib's signature)
        if req.host and urllib.request.proxy_bypass_environment(req.host, {"no": self.no_proxy}):
            return None  # straight to the host
        if type in self.authorization:
            # Unredirected: a redirect to a host in NO_PROXY must not carry the proxy's password there
            # (requests drops it too). urllib moves it to the CONNECT request of an HTTPS tunnel.
            req.add_unredirected_header("Proxy-Authorization", self.authorization[type])
        req.set_proxy(urllib.parse.urlsplit(proxy).netloc, "http")  # network_proxy's proxies are http://
        return None  # the HTTP(S) handler then opens the request through the proxy


def _version_key(wheel: Path) -> tuple:
    """pip-24.3.1-py3-none-any.whl -> (24, 3, 1): newest by number, not by text."""
    return tuple(int(part) if part.isdigit() else 0 for part in wheel.name.split("-")[1].split("."))


def _call(command: list, feedback: Feedback, what: str, progress=None, environment=None, held=()) -> None:
    """Run one install command, its output as log lines; cancel kills it. ``environment`` adds variables;
    ``held`` are locks the command keeps held (the install's): a pip that outlives a killed QGIS still
    keeps the next install from deleting the folder it writes into."""
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=child_environment({"PIP_NO_CACHE_DIR": "1", **(environment or {})}),
                                   **no_console_window(), **held_by_child(*held))
    except OSError as exc:
        raise SatPluginError(f"The engine's installation could not start {command[0]} ({exc}); nothing was installed.") from None
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(raw) for raw in process.stdout] + [lines.put(None)], daemon=True)
    reader.start()
    try:
        _follow_install_step(process, lines, feedback, what, progress)
    finally:
        reader.join(timeout=5)  # the process has ended: its output ends too
        if not reader.is_alive():
            process.stdout.close()


def _follow_install_step(process, lines: queue.Queue, feedback: Feedback, what: str, progress) -> None:
    """Log pip's lines as they come, cancel and time out the step; refuse a failed one."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    tail, count = [], 0
    while True:
        try:
            raw = lines.get(timeout=0.1)
        except queue.Empty:
            raw = b""
        if raw is None:
            break
        text = raw.decode("utf-8", "replace").rstrip()
        if text:
            tail, count = (tail + [text])[-10:], count + 1
            if text.startswith(("Processing ", "Collecting ", "Installing ", "Successfully", "ERROR")):
                feedback.log(text)
            if progress:  # pip does not say how far it is: a curve that approaches the end
                feedback.set_progress(progress[0] + (progress[1] - progress[0]) * (1 - 1 / (1 + count / 20)))
        if feedback.is_canceled() or time.monotonic() > deadline:
            process.kill()
            process.wait()
            if feedback.is_canceled():
                raise Canceled("The engine's installation was canceled; the previous state was kept.")
            raise SatPluginError(f"{what} took more than {STEP_TIMEOUT_S:.0f} s; the previous state was kept.")
    if process.wait() != 0:
        raise SatPluginError(f"The engine's installation failed while {what} (exit {process.returncode}): "
                             + " | ".join(tail[-4:]) + "; the previous state was kept.")


def _swap(staging: Path, folder: Path) -> None:
    """Put the new environment in place of the old one (renames; the old one goes last)."""
    old = _leftovers(folder)[1]
    _remove_ours(old, allow_unmarked=True)
    if folder.exists():
        if not (folder / MARKER).exists():
            raise SatPluginError(f"{folder} exists and was not made by the plugin; it was left alone.")
        folder.rename(old)
    try:
        staging.rename(folder)
    except OSError:
        if old.exists():
            old.rename(folder)  # the previous engine back in place
        raise
    _remove_ours(old, allow_unmarked=True)


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise SatPluginError(
            f"{path} is a link; the installer moves and deletes its folders by name and will not follow a link. "
            "Remove the link (the folder it points to stays), or use an environment of your own (Options > "
            "Processing > Providers > Sentinel-2 ML datasets > Engine Python interpreter)."
        )


def _remove_ours(path: Path, *, allow_unmarked: bool) -> None:
    """Remove a folder the installer made: marked, or (staging folders) holding a pyvenv.cfg or nothing.

    Renamed away first, in one step, then deleted: a removal killed half-way leaves no half
    engine under the real name (its marker perhaps gone, so that nothing would remove it), only
    a hidden trash folder that the next install or removal takes (:func:`_leftovers`). Windows
    refuses the rename while a program of the folder runs, so a running engine stays whole.
    """
    _refuse_link(path)
    if not path.exists():
        return
    ours = (path / MARKER).exists() or (allow_unmarked and ((path / "pyvenv.cfg").exists() or not any(path.iterdir())))
    if not ours:
        raise SatPluginError(f"{path} was not made by the plugin's installer; it was left alone.")
    trash = path.with_name(f".{path.name}{TRASH}{uuid.uuid4().hex[:8]}")
    path.rename(trash)
    shutil.rmtree(trash)
