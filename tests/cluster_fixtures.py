"""A real Dask cluster for tests: `dask scheduler` and `dask worker` processes on 127.0.0.1.

They run this environment's Python; the workers import the plugin the way the tests do
(the `satplugin` link on PYTHONPATH).
"""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from .plugin_link import link_plugin_package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealCluster:
    """`dask scheduler` + `dask worker` processes on 127.0.0.1, each worker one process with one thread."""

    def __init__(self, folder: Path, n_workers: int = 2, preload: str = None):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        env = {**os.environ, "PYTHONPATH": str(link_plugin_package()), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.log = open(folder / "cluster.log", "w")
        self.scheduler = subprocess.Popen(
            dask + ["--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        extra = ["--preload", preload] if preload else []
        self.workers = [
            subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                              "--no-nanny", "--no-dashboard", "--name", f"w{i}", *extra],
                             env=env, stdout=self.log, stderr=subprocess.STDOUT)
            for i in range(n_workers)]

    def kill_one_at(self, fraction: float):
        """A progress callback that SIGKILLs the first worker once progress passes ``fraction`` (once)."""
        self.killed = threading.Event()

        def progress(value):
            if value > fraction and not self.killed.is_set():
                self.killed.set()
                os.kill(self.workers[0].pid, signal.SIGKILL)

        return progress

    def close(self):
        for p in self.workers + [self.scheduler]:
            if p.poll() is None:
                p.terminate()
        for p in self.workers + [self.scheduler]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


def checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


