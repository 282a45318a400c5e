"""Shared fixtures: the plugin as an importable package, real data, qgis_process runs."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The repository root is the plugin folder; QGIS imports it as the package `satplugin`,
# and so do the tests (tests/plugin_link.py).
sys.path.insert(0, str(ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()

if not os.environ.get("XDG_RUNTIME_DIR") or not os.access(os.environ["XDG_RUNTIME_DIR"], os.W_OK):
    runtime = Path(tempfile.mkdtemp(prefix="satplugin-xdg-"))
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def real_data_dir() -> Path:
    return Path(os.environ.get("SATPLUGIN_REAL_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def real_data():
    """The shared folder of real Sentinel-2 scenes and parcels; skips when absent."""
    folder = real_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (set SATPLUGIN_REAL_DATA)")
    return folder


@pytest.fixture
def satplugin_provider(qgis_processing):
    """The plugin's provider registered in this QGIS session, as QGIS Desktop does it."""
    from qgis.core import QgsApplication

    import satplugin

    registry = QgsApplication.processingRegistry()
    if registry.providerById("satplugin") is None:
        plugin = satplugin.classFactory(None)
        plugin.initProcessing()
        # Keep the plugin (and so the provider) alive for the whole session.
        satplugin_provider.plugin = plugin
    return registry.providerById("satplugin")


def run_qgis_process(*args, expect_success=True, timeout=300):
    """Run scripts/qgis-process as a real subprocess; parse --json output when present."""
    cmd = [str(ROOT / "scripts" / "qgis-process"), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if expect_success and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if "--json" in args and proc.returncode == 0:
        return proc, json.loads(proc.stdout)
    return proc, None


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1 (tests/cluster_fixtures.py)."""
    pytest.importorskip("distributed")
    from tests.cluster_fixtures import RealCluster

    cluster = RealCluster(tmp_path_factory.mktemp("real-cluster"))
    yield cluster
    cluster.close()


def with_bind_mount(source: Path, target: Path, *command) -> subprocess.CompletedProcess:
    """Run ``command`` where ``target`` is a bind mount of ``source`` (a second name of one folder, as a
    Docker volume or a case-insensitive volume gives), in a user and mount namespace of its own
    (``unshare``), so nothing outside changes. Skips the test where namespaces are not allowed."""
    mount_then = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    run = ["unshare", "-rm", "sh", "-c", mount_then, "sh", str(source), str(target)]
    probe = subprocess.run([*run, "true"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no mount namespace here: {probe.stderr.strip()}")
    return subprocess.run([*run, *map(str, command)], capture_output=True, text=True)


def shell_program(folder: Path, name: str, body: str) -> str:
    """An executable shell script ``folder/name`` running ``body``."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | 0o111)
    return str(path)


@pytest.fixture
def engine_python(tmp_path):
    """A 'python' that runs the checkout's core as satplugin_engine (what an installed engine does)."""
    link = tmp_path / "site"
    link.mkdir()
    (link / "satplugin_engine").symlink_to(ROOT / "qgis_satplugin" / "core", target_is_directory=True)
    return shell_program(tmp_path, "engine-python", f'PYTHONPATH={link} exec {sys.executable} "$@"\n')
