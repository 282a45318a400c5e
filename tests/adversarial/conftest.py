"""The adversarial suite's tools: small full file systems and fingerprints of what must not change."""
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest


def sha256_tree(root) -> dict:
    """Relative path -> sha256 of every file under ``root`` (or of ``root`` itself)."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fill_disk(folder, keep_bytes: int = 0) -> Path:
    """Fill the file system holding ``folder`` until ``keep_bytes`` are left; returns the filler."""
    filler = Path(folder) / f"filler-{uuid.uuid4().hex[:6]}.bin"
    with open(filler, "wb") as f:
        block = b"\0" * (1 << 16)
        try:
            while True:
                left = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if left <= keep_bytes:
                    break
                f.write(block[: max(1, min(len(block), left - keep_bytes))])
                f.flush()
        except OSError:
            pass
    return filler


@pytest.fixture
def small_fs(tmp_path):
    """A factory of size-limited tmpfs mounts (root only; skips with the reason otherwise).

    ``small_fs("4M")`` returns an empty folder on a new 4 MiB file system, unmounted at
    the end of the test.
    """
    mounts = []

    def make(size: str = "4M") -> Path:
        if os.geteuid() != 0:
            pytest.skip("a size-limited tmpfs needs root to mount; this test runs as a normal user")
        point = tmp_path / f"fs-{len(mounts)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
        mounts.append(point)
        return point

    yield make
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
