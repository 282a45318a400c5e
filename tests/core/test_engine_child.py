"""Running a step in an engine process, from the QGIS side (qgis_satplugin/engine_env): real child processes.

The engine is the developer environment's own Python running the real engine command line
(the checkout imported as ``satplugin_engine`` through a small launcher), and, for the
faults, small programs that behave as a crashing or deaf engine would.
"""
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import shapely

from satplugin.qgis_satplugin.core import __version__
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.ground_truth.options import GroundTruthOptions, OutputPaths
from satplugin.qgis_satplugin.engine_env import locate
from satplugin.qgis_satplugin.engine_env.child import EngineFailed, run_in_engine
from tests.conftest import ROOT, shell_program

GRID = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 10.0, 20, 20)
SQUARE = shapely.to_wkb(shapely.box(500050.0, 4999850.0, 500150.0, 4999950.0), hex=True)


def _job(folder: Path) -> str:
    return GroundTruthOptions(polygons=(SQUARE,), class_values=(3,), source_crs="EPSG:32633", grid=GRID,
                              outputs=OutputPaths(class_raster=str(folder / "class.tif"))).to_json()


def test_a_step_runs_in_the_child_with_progress_and_log(engine_python, tmp_path):
    seen, logs = [], []
    result = run_in_engine(engine_python, "ground_truth", _job(tmp_path), Feedback(progress=seen.append, log=logs.append))
    assert result["n_rasterized"] == 1 and result["n_classes"] == 1
    assert result["labelled_pixels"] > 0 and (tmp_path / "class.tif").is_file()
    assert seen and seen == sorted(seen) and seen[-1] == 1.0
    assert any("pixels" in line or "polygon" in line for line in logs), logs


def test_job_folders_left_by_a_killed_qgis_are_removed_by_the_next_run(engine_python, tmp_path, monkeypatch):
    import subprocess
    import tempfile

    from satplugin.qgis_satplugin.engine_env import child

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    ended = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                               text=True, check=True).stdout)
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    here = socket.gethostname()
    # A run whose process id means nothing here (another container on this kernel) still holds its lock.
    holder = temp / "satplugin-job-locked" / "owner.pid"
    holder.parent.mkdir()
    holder.write_text(f"{ended} {here}")
    locking = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                                "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(holder)],
                               stdout=subprocess.PIPE, text=True)
    assert locking.stdout.readline().strip() == "locked"
    try:
        folders = {"locked": holder.parent}
        for name, owner, age in (("killed", f"{ended} {here}", 3600), ("killed earlier version", str(ended), 3600),
                                 ("starting", f"{ended} {here}", 5), ("running", f"{living.pid} {here}", 3600),
                                 ("other host", f"{ended} not-{here}", 3600), ("no owner", None, 3600)):
            folder = temp / f"satplugin-job-{name.replace(' ', '')}"
            folder.mkdir()
            (folder / "job.json").write_text("{}")
            if owner is not None:
                (folder / "owner.pid").write_text(owner)
            folders[name] = folder
        for folder in folders.values():
            os.utime(folder, (time.time() - 3600, time.time() - 3600))
        os.utime(folders["starting"], (time.time() - 5, time.time() - 5))
        unrelated = temp / "satplugin-other"
        unrelated.mkdir()
        os.utime(unrelated, (time.time() - 3600, time.time() - 3600))
        child.run_in_engine(engine_python, "ground_truth", _job(tmp_path), Feedback())
        removed = ("killed", "killed earlier version")
        assert sorted(p.name for p in temp.glob("satplugin-job-*")) == sorted(
            f.name for n, f in folders.items() if n not in removed)
        assert unrelated.exists()
    finally:
        for process in (living, locking):
            process.kill()
            process.wait()


def test_a_run_leaves_no_file_of_the_child_open(engine_python, tmp_path):
    import gc
    import warnings

    gc.collect()  # what earlier tests left (their sockets) is not this run's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        run_in_engine(engine_python, "ground_truth", _job(tmp_path), Feedback())
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "unclosed file" in str(w.message)] == []


def test_a_step_error_is_its_sentence(engine_python, tmp_path):
    job = json.loads(_job(tmp_path))
    job["min_coverage"] = 2.0
    with pytest.raises(SatPluginError, match="MIN_COVERAGE must lie between 0 and 1") as caught:
        run_in_engine(engine_python, "ground_truth", json.dumps(job))
    assert not isinstance(caught.value, EngineFailed)


def test_a_crash_is_one_clear_error(tmp_path):
    crashing = shell_program(tmp_path, "python", 'echo \'{"progress": 0.5}\'\necho "Fatal Python error: Segmentation fault" >&2\nkill -SEGV $$\n')
    seen = []
    with pytest.raises(EngineFailed) as caught:
        run_in_engine(crashing, "ground_truth", _job(tmp_path), Feedback(progress=seen.append))
    message = str(caught.value)
    assert "signal 11: a segmentation fault in a native library" in message
    assert "Fatal Python error: Segmentation fault" in message
    assert seen == [0.5]


def test_cancel_ends_a_deaf_child_within_two_seconds(tmp_path):
    deaf = shell_program(tmp_path, "python", "trap '' TERM\necho '{\"log\": \"working\"}'\nsleep 60\n")
    started = time.monotonic()
    cancel_at = started + 0.5
    with pytest.raises(Canceled):
        run_in_engine(deaf, "ground_truth", _job(tmp_path), Feedback(is_canceled=lambda: time.monotonic() > cancel_at))
    assert time.monotonic() - cancel_at < 2.0


def test_secrets_reach_the_child_through_its_environment_only(tmp_path):
    spy = shell_program(tmp_path, "python", f'env > {tmp_path}/env.txt\ncat "$5" > {tmp_path}/job.txt\n'
                   'echo \'{"result": {"ok": true}}\'\n')
    assert run_in_engine(spy, "search", "{}", extra_env={"SH_CLIENT_SECRET": "s3cr3t-value"}) == {"ok": True}
    assert "SH_CLIENT_SECRET=s3cr3t-value" in (tmp_path / "env.txt").read_text()
    assert "s3cr3t" not in (tmp_path / "job.txt").read_text()
    # The child does not inherit what points Python at QGIS's packages.
    assert "PYTHONPATH=" not in (tmp_path / "env.txt").read_text()


def test_the_engine_choice_and_its_sentences(engine_python, tmp_path, monkeypatch):
    monkeypatch.delenv(locate.ENGINE_PYTHON_VARIABLE, raising=False)
    chosen = locate.find_engine(__version__, setting=engine_python, profile_folder=tmp_path)
    assert chosen.python == engine_python and "Processing setting" in chosen.origin
    monkeypatch.setenv(locate.ENGINE_PYTHON_VARIABLE, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(locate.EngineMissing, match=rf"does not exist; pip install the plugin's engine_wheel/satplugin_engine-"
                                                   rf"{__version__}-\*\.whl\[all\] into that environment, or unset "
                                                   r"SATPLUGIN_ENGINE_PYTHON to use the managed engine \(qgis_process"):
        locate.find_engine(__version__, setting=engine_python)
    monkeypatch.delenv(locate.ENGINE_PYTHON_VARIABLE)
    with pytest.raises(locate.EngineMissing, match=r"cannot run the engine: .*; pip install .* or clear Options > Processing "
                                                   r"> Providers > Sentinel-2 ML datasets > Engine Python interpreter to"):
        locate.find_engine(__version__, setting=shell_program(tmp_path, "python3", "echo 'No module named satplugin_engine' >&2\nexit 1\n"))
    monkeypatch.setenv(locate.ENGINE_PYTHON_VARIABLE, engine_python)
    with pytest.raises(locate.EngineMissing, match=f"is version {__version__}, but this plugin is version 9.9.9: update it"):
        locate.find_engine("9.9.9")
    monkeypatch.delenv(locate.ENGINE_PYTHON_VARIABLE)
    # Nothing chosen, no managed engine: this developer environment runs the steps in-process.
    assert locate.find_engine(__version__, profile_folder=tmp_path).in_process
    monkeypatch.setattr(locate, "IN_PROCESS_PACKAGES", ("no_such_package_here",))
    with pytest.raises(locate.EngineMissing, match="This step needs the plugin's engine, which is not installed"):
        locate.find_engine(__version__, profile_folder=tmp_path)


def test_the_version_command_imports_no_step(engine_python):
    import subprocess

    answer = subprocess.run([engine_python, "-X", "importtime", "-m", "satplugin_engine", "version"],
                            capture_output=True, text=True, env={**os.environ}, check=True)
    assert json.loads(answer.stdout)["version"] == __version__
    assert "rasterio" not in answer.stderr and "shapely" not in answer.stderr


def test_install_and_remove_keep_what_they_did_not_make(tmp_path):
    """A folder the installer did not make is never removed; a second install of a folder refuses at once."""
    from satplugin.qgis_satplugin.core.locks import OutputLock
    from satplugin.qgis_satplugin.engine_env import install

    foreign = tmp_path / "satplugin-engine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SatPluginError, match="was not made by the plugin's installer; it was left alone"):
        install.remove_engine(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    plan = install.InstallPlan(tmp_path / "engine", install.EngineSource(ROOT, __version__), "all")
    with OutputLock([plan.folder], what="engine installation"):
        with pytest.raises(SatPluginError, match="Another engine installation is writing to"):
            install.install_engine(plan)
    assert not (tmp_path / "engine.new").exists() and not plan.folder.exists()
    offline = install.InstallPlan(tmp_path / "engine", install.EngineSource(ROOT, __version__), "all",
                                  wheelhouse=tmp_path / "empty-wheelhouse")
    (tmp_path / "empty-wheelhouse").mkdir()
    with pytest.raises(SatPluginError, match="has no pip wheel; nothing was installed"):
        install.install_engine(offline, base_python=Path(sys.executable))
    assert not (tmp_path / "engine.new").exists() and not plan.folder.exists()


def test_remove_takes_a_killed_installs_leftovers_and_waits_for_no_running_step(tmp_path):
    """What a killed install left (the .new environment, 900 MB) goes with the engine; nothing goes
    while a step runs in the engine (``running_in``, held by every step run there)."""
    from satplugin.qgis_satplugin.engine_env import install

    folder = tmp_path / "satplugin-engine"
    for path, mark in ((folder, install.MARKER), (tmp_path / "satplugin-engine.new", "pyvenv.cfg")):
        (path / "lib").mkdir(parents=True)
        (path / mark).write_text("{}")
    with install.running_in(folder):
        with pytest.raises(SatPluginError, match=r"^A step is running in the engine at .*satplugin-engine \(in this or "
                                                 r"another QGIS or qgis_process\); wait for it to end, or cancel it, then "
                                                 r"remove it again\. The engine was left as it was\.$"):
            install.remove_engine(folder)
        assert (folder / install.MARKER).exists() and (tmp_path / "satplugin-engine.new" / "pyvenv.cfg").exists()
        plan = install.InstallPlan(folder, install.EngineSource(ROOT, __version__), "all")
        with pytest.raises(SatPluginError, match="then install again"):
            install.install_engine(plan, base_python=Path(sys.executable))
        assert (folder / install.MARKER).exists()
        with install.running_in(folder):  # any number of steps at once
            pass
    assert install.remove_engine(folder) == [folder, tmp_path / "satplugin-engine.new"]
    assert sorted(tmp_path.iterdir()) == []
    assert install.remove_engine(folder) == []
    # And a step does not start while the engine is being removed or replaced.
    with install._no_step_running(folder, "remove it"):
        with pytest.raises(SatPluginError, match=r"^The engine at .* is being updated or removed; run the step again"):
            with install.running_in(folder):
                pass


def test_an_engine_python_that_cannot_start_is_one_sentence(tmp_path):
    gone = tmp_path / "satplugin-engine" / "bin" / "python"
    with pytest.raises(EngineFailed, match=rf"^The engine's Python {gone} could not be started \(No such file or "
                                           r"directory\); nothing was run\. Check that the engine is installed"):
        run_in_engine(str(gone), "export", "{}", Feedback())


def test_killed_removals_and_swaps_are_mended_and_links_are_not_followed(tmp_path):
    from satplugin.qgis_satplugin.engine_env import install

    folder = tmp_path / "satplugin-engine"

    def engine(path):
        (path / "bin").mkdir(parents=True)
        (path / install.MARKER).write_text("{}")
        return path

    # A removal killed while deleting left its hidden trash folder (the engine had been renamed away whole).
    trash = tmp_path / ".satplugin-engine.removing-0123abcd"
    (trash / "lib").mkdir(parents=True)
    # A swap killed between its two renames left the previous engine as .old: it goes back in place.
    engine(tmp_path / "satplugin-engine.old")
    assert install._clear_leftovers(folder) == [trash]
    assert (folder / install.MARKER).is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["satplugin-engine"]
    assert install.remove_engine(folder) == [folder] and list(tmp_path.iterdir()) == []
    # An engine folder that is a link (to another disk): neither removed nor replaced, said at once.
    target = engine(tmp_path / "elsewhere" / "engine")
    folder.symlink_to(target, target_is_directory=True)
    link_refusal = rf"^{folder} is a link; the installer moves and deletes its folders by name and will not follow a link\."
    with pytest.raises(SatPluginError, match=link_refusal):
        install.remove_engine(folder)
    plan = install.InstallPlan(folder, install.EngineSource(ROOT, __version__), "all")
    with pytest.raises(SatPluginError, match=link_refusal):
        install.install_engine(plan, base_python=Path(sys.executable))
    assert folder.is_symlink() and (target / install.MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "satplugin-engine"]


PARENT_HOLDING_A_LOCK = """
import sys
from pathlib import Path
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.locks import OutputLock
from satplugin.qgis_satplugin.engine_env import install
from satplugin.qgis_satplugin.engine_env.child import run_in_engine
folder, program, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if kind == "step":  # a step in the managed engine (processing_algs/base.run_step)
    with install.running_in(folder) as in_use:
        run_in_engine(program, "search", "{}", held=(in_use,))
else:  # an install running pip
    with OutputLock([folder], what="engine installation") as lock:
        install._call([program], Feedback(), "installing", held=(lock,))
"""


@pytest.mark.parametrize("kind", ["step", "install"])
def test_a_child_that_outlives_a_killed_qgis_keeps_its_lock(tmp_path, kind):
    """The engine child (its own session) and pip outlive a SIGKILLed QGIS until their next write.
    Meanwhile nothing may remove the engine under the step, nor clear the folder pip writes into."""
    import signal
    import subprocess

    from satplugin.qgis_satplugin.core.locks import OutputLock
    from satplugin.qgis_satplugin.engine_env import install

    folder = tmp_path / "satplugin-engine"
    child = shell_program(tmp_path, "child", f"touch {tmp_path}/started\nsleep 2\ntouch {tmp_path}/ended\n")
    parent = subprocess.Popen([sys.executable, "-c", PARENT_HOLDING_A_LOCK, str(folder), child, kind],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    for _ in range(200):
        if (tmp_path / "started").exists():
            break
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def take():
        return install._no_step_running(folder, "remove it") if kind == "step" else OutputLock([folder], "removal")

    with pytest.raises(SatPluginError, match="A step is running in the engine" if kind == "step" else "is writing to"):
        with take():
            pass
    assert not (tmp_path / "ended").exists()
    for _ in range(200):  # free once the child has ended
        try:
            with take():
                break
        except SatPluginError:
            time.sleep(0.05)
    assert (tmp_path / "ended").exists()


def test_a_defect_in_the_engine_shows_the_end_of_its_traceback_in_the_log(tmp_path):
    engine = shell_program(tmp_path, "engine", "\n".join([
        "echo 'UserWarning: a warning of a library' >&2",
        "echo 'Traceback (most recent call last):' >&2",
        "echo '  File \"satplugin_engine/export/runner.py\", line 9, in run' >&2",
        "echo \"ModuleNotFoundError: No module named 'pyogrio'\" >&2",
        "echo '{\"error\": \"The engine failed unexpectedly (ModuleNotFoundError)\", \"defect\": true}'",
        "exit 1", ""]))
    logs = []
    with pytest.raises(SatPluginError, match=r"^The engine failed unexpectedly \(ModuleNotFoundError\)$"):
        run_in_engine(engine, "export", "{}", Feedback(log=logs.append))
    assert logs == ["The end of the engine's error output:", "  Traceback (most recent call last):",
                    '    File "satplugin_engine/export/runner.py", line 9, in run',
                    "  ModuleNotFoundError: No module named 'pyogrio'"]
    # An error the engine expects (bad input): nothing more in the log, even where a library printed
    # (and handled) a traceback of its own.
    quiet = shell_program(tmp_path, "quiet", "echo 'Traceback (most recent call last):' >&2\n"
                          "echo '{\"error\": \"Choose a folder.\"}'\nexit 1\n")
    logs.clear()
    with pytest.raises(SatPluginError, match="^Choose a folder.$"):
        run_in_engine(quiet, "export", "{}", Feedback(log=logs.append))
    assert logs == []


def test_pip_comes_from_the_pypi_json_api_also_where_a_mirror_gives_relative_addresses(tmp_path, monkeypatch):
    """The installer without a wheelhouse fetches pip itself, checked against the published sha256."""
    import hashlib

    from satplugin.qgis_satplugin.engine_env import install
    from tests.servers.files import RangeFileServer

    wheel = b"PK a pip wheel, as far as the installer can tell"
    site = tmp_path / "site"
    (site / "pypi" / "pip").mkdir(parents=True)
    (site / "packages").mkdir()
    (site / "packages" / "pip-26.3-py3-none-any.whl").write_bytes(wheel)
    staging = tmp_path / "staging"
    staging.mkdir()
    plan = install.InstallPlan(tmp_path / "engine", install.EngineSource(ROOT, __version__), "all")
    for digest, expected in ((hashlib.sha256(wheel).hexdigest(), None), ("0" * 64, "does not match its published checksum")):
        release = {"urls": [{"packagetype": "sdist", "url": "../../packages/pip-26.3.tar.gz", "filename": "pip-26.3.tar.gz"},
                            {"packagetype": "bdist_wheel", "url": "../../packages/pip-26.3-py3-none-any.whl",
                             "filename": "pip-26.3-py3-none-any.whl", "digests": {"sha256": digest}}]}
        (site / "pypi" / "pip" / "json").write_text(json.dumps(release))
        with RangeFileServer(site) as server:
            monkeypatch.setattr(install, "PYPI_PIP", f"{server.url}/pypi/pip/json")
            if expected is None:
                got = install._pip_wheel(plan, staging, Feedback())
                assert got == staging / "pip-26.3-py3-none-any.whl" and got.read_bytes() == wheel
                assert [r.path for r in server.requests] == ["/pypi/pip/json", "/packages/pip-26.3-py3-none-any.whl"]
            else:
                (staging / "pip-26.3-py3-none-any.whl").unlink()
                with pytest.raises(SatPluginError, match=expected):
                    install._pip_wheel(plan, staging, Feedback())
                assert list(staging.iterdir()) == []


def test_the_installers_downloads_go_through_the_proxy_it_is_given(tmp_path, monkeypatch):
    """QGIS's proxy (processing_algs/network_proxy.py) reaches the pip download and pip's environment,
    with pip's rules: credentials in Latin-1, as requests sends them, and NO_PROXY's hosts direct."""
    import base64
    import hashlib

    from pip._vendor.requests.auth import _basic_auth_str

    from satplugin.qgis_satplugin.engine_env import install
    from tests.servers.files import RangeFileServer

    wheel = b"PK a pip wheel, as far as the installer can tell"
    site = tmp_path / "site"
    (site / "pypi" / "pip").mkdir(parents=True)
    (site / "pypi" / "pip" / "json").write_text(json.dumps({"urls": [{
        "packagetype": "bdist_wheel", "url": "http://files.satplugin.test/pip-26.3-py3-none-any.whl",
        "filename": "pip-26.3-py3-none-any.whl", "digests": {"sha256": hashlib.sha256(wheel).hexdigest()}}]}))
    (site / "pip-26.3-py3-none-any.whl").write_bytes(wheel)
    staging = tmp_path / "staging"
    staging.mkdir()
    with RangeFileServer(site) as proxy:  # it answers what a proxy is asked for, as the origin would
        address = proxy.url.replace("http://", "http://jane:p%C3%A4%40x@")  # as network_proxy quotes "pä@x"
        here = proxy.url.removeprefix("http://")
        plan = install.InstallPlan(tmp_path / "engine", install.EngineSource(ROOT, __version__), "all",
                                   environment={"HTTP_PROXY": address, "HTTPS_PROXY": address, "NO_PROXY": here})
        monkeypatch.setattr(install, "PYPI_PIP", f"{proxy.url}/pypi/pip/json")  # excluded: asked directly
        monkeypatch.setenv("no_proxy", "files.satplugin.test")  # this process's own exclusions do not count
        assert install._pip_wheel(plan, staging, Feedback()).read_bytes() == wheel
    asked = [(r.headers["host"], r.path, r.headers.get("proxy-authorization")) for r in proxy.requests]
    assert asked == [(here, "/pypi/pip/json", None),
                     ("files.satplugin.test", "/pip-26.3-py3-none-any.whl", _basic_auth_str("jane", "pä@x"))]
    assert asked[1][2] == "Basic amFuZTpw5EB4"  # base64 of b"jane:p\xe4@x", which pip sends as well
    # pip runs with the same variables.
    spy = shell_program(tmp_path, "spy", f"env > {tmp_path}/env.txt\n")
    install._call([spy], Feedback(), "spying", environment=plan.environment)
    seen = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line)
    assert seen["HTTP_PROXY"] == seen["HTTPS_PROXY"] == address
    # A redirect from the proxied host to an excluded one does not take the proxy's password there.
    with RangeFileServer(site) as origin, RangeFileServer(site) as proxy:
        plan.environment = {"HTTP_PROXY": proxy.url.replace("http://", "http://jane:pw@"),
                            "NO_PROXY": origin.url.removeprefix("http://")}
        proxy.script(302, headers={"Location": f"{origin.url}/pypi/pip/json"}, path="/pypi/pip/json")
        monkeypatch.setattr(install, "PYPI_PIP", "http://pypi.satplugin.test/pypi/pip/json")
        install._pip_wheel(plan, staging, Feedback())
    assert [r.headers.get("proxy-authorization") for r in proxy.requests] == ["Basic " + base64.b64encode(b"jane:pw").decode()] * 2
    assert [(r.path, r.headers.get("proxy-authorization")) for r in origin.requests] == [("/pypi/pip/json", None)]


def test_an_engine_python_older_than_the_engine_needs_is_one_sentence(tmp_path):
    import tomllib

    from satplugin.qgis_satplugin.engine_env import install

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=" + ".".join(map(str, install.ENGINE_PYTHON_MIN))
    source = install.EngineSource(ROOT, __version__)
    with pytest.raises(SatPluginError, match=r"^QGIS's Python is 3\.9, and the engine needs Python 3\.10 or later, .*"
                                             r"Engine Python interpreter\.$"):
        install.plan_install(tmp_path / "engine", source, python_version=(3, 9))
    assert not (tmp_path / "engine").exists()
    assert install.plan_install(tmp_path / "engine", source, python_version=(3, 11)).extra in ("all", "all-gpu")


def test_relative_paths_in_a_job_mean_what_they_mean_to_qgis(engine_python, tmp_path, monkeypatch):
    """The child starts in its job's folder but works in QGIS's: `OUTPUT_CLASS=class.tif` lands beside QGIS."""
    here = tmp_path / "where-qgis-runs"
    here.mkdir()
    monkeypatch.chdir(here)
    job = GroundTruthOptions(polygons=(SQUARE,), class_values=(3,), source_crs="EPSG:32633", grid=GRID,
                             outputs=OutputPaths(class_raster="class.tif")).to_json()
    result = run_in_engine(engine_python, "ground_truth", job)
    assert result["outputs"]["class"] == "class.tif" and (here / "class.tif").is_file()
    assert sorted(p.name for p in here.iterdir()) == ["class.tif"]
