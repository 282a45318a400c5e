"""A stock QGIS for tests and benchmarks: the plugin's zip in a fresh profile, qgis_process with QGIS's Python only."""
import json
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")
STOCK_PYTHON = Path("/usr/bin/python3")
WHEELHOUSE = ROOT / ".wheelhouse"


class StockQgis:
    """A fresh profile with the plugin installed from its zip, and qgis_process run with QGIS's Python only."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.profile = folder / "profile"
        plugins = self.profile / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "package.py"),
                        "--output-dir", str(folder / "dist")], check=True, capture_output=True)
        zipfile.ZipFile(next((folder / "dist").glob("satplugin-*.zip"))).extractall(plugins)
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
                    "XDG_RUNTIME_DIR": str(runtime), "QGIS_CUSTOM_CONFIG_PATH": str(self.profile)}
        self.run("plugins", "enable", "satplugin")

    @property
    def engine_python(self) -> Path:
        return self.profile / "profiles" / "default" / "satplugin-engine" / "bin" / "python"

    def run(self, *args, timeout=600) -> subprocess.CompletedProcess:
        return subprocess.run([str(QGIS_PROCESS), *map(str, args)], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.folder)

    def run_json(self, *args) -> dict:
        proc = self.run("--json", *args)
        if proc.returncode != 0:
            raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
        return json.loads(proc.stdout)

    def install_engine(self) -> None:
        """The engine installed offline from the wheelhouse, as a user without internet would."""
        proc = self.run("run", "satplugin:installengine", "--", f"WHEELHOUSE={WHEELHOUSE}", timeout=900)
        if proc.returncode != 0:
            raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
