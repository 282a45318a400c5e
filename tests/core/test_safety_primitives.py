"""The shared safety rules, on the inputs a review found they missed."""
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from satplugin.qgis_satplugin.core import locks
from satplugin.qgis_satplugin.core.atomic import AtomicOutputs
from satplugin.qgis_satplugin.core.download.runner import _LEFTOVER as DOWNLOAD_LEFTOVER
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import staging
from satplugin.qgis_satplugin.core.export.dataset_card import CONTENTS_KEY, FORMAT, JSON_NAME
from satplugin.qgis_satplugin.core.http.hrefs import is_http_url
from satplugin.qgis_satplugin.core.http.client import origin
from satplugin.qgis_satplugin.core.http.signing import UNSTATED_LIFETIME_S, TokenCache


def test_a_lock_folder_that_is_not_private_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"satplugin-locks-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # as another user could have made it first
    with pytest.raises(SatPluginError, match="is not a private folder of this user"):
        with locks.OutputLock(tmp_path / "out.tif"):
            pass
    folder.chmod(0o700)
    with locks.OutputLock(tmp_path / "out.tif") as held:
        assert held.keys == [str((tmp_path / "out.tif").resolve())]


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    lock = locks.OutputLock(tmp_path / "out.tif")
    folder = locks._lock_folder()
    import hashlib

    name = hashlib.sha256(lock.keys[0].encode("utf-8")).hexdigest()[:32] + ".lock"
    (folder / name).symlink_to(target)
    with pytest.raises(SatPluginError, match="Cannot create a lock file"):
        with lock:
            pass
    assert target.read_text() == "precious"


def test_urls_with_a_port_that_is_no_number_are_refused_not_a_traceback():
    assert not is_http_url("https://host:99999/B04.tif")
    assert not is_http_url("https://evil:abc/B04.tif")
    assert is_http_url("https://host:8443/B04.tif")
    assert origin("https://evil:abc/x") == "https://evil:abc"
    assert origin("https://Host:8443/x?sig=1") == "https://host:8443"


def _export_folder(root: Path, contents):
    root.mkdir()
    for name in contents:
        (root / name).write_bytes(b"x")
    (root / JSON_NAME).write_text(json.dumps({"format": FORMAT, CONTENTS_KEY: [*contents, JSON_NAME]}))


def test_files_others_put_beside_an_export_go_with_it(tmp_path):
    _export_folder(tmp_path / "ds", ["index.gpkg", "samples.csv"])
    for name in ("index.gpkg-wal", "index.gpkg-shm", ".DS_Store", "samples.csv.aux.xml"):
        (tmp_path / "ds" / name).write_bytes(b"y")
    assert staging.foreign_entries(tmp_path / "ds") == []
    (tmp_path / "ds" / "thesis.txt").write_text("mine")
    (tmp_path / "ds" / "other.gpkg-wal").write_text("a journal of a file we did not write")
    assert staging.foreign_entries(tmp_path / "ds") == ["other.gpkg-wal", "thesis.txt"]


def test_a_download_removes_only_its_own_temp_files():
    ours = [".20230612T101559_S2B_T32TQM.staging-0a1b2c3d.tif", ".20230612T101559_S2B_T32TQM_SCL.partial-0a1b2c3d.tif",
            ".manifest.json.0a1b2c3d.tmp"]
    others = [".class.partial-0a1b2c3d.tif", ".series_5m.partial-0a1b2c3d.tif", "20230612T101559_S2B_T32TQM.tif"]
    assert all(DOWNLOAD_LEFTOVER.match(n) for n in ours)
    assert not any(DOWNLOAD_LEFTOVER.match(n) for n in others)


def test_an_output_that_cannot_be_replaced_is_one_sentence_and_no_temp_is_left(tmp_path, monkeypatch):
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    real_replace = os.replace

    def refuse_second(src, dst):
        if Path(dst) == second:
            raise PermissionError(13, "The process cannot access the file", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_second)
    with pytest.raises(SatPluginError, match="Permission denied while writing at"):
        with AtomicOutputs([first, second]) as temp:
            for path in temp.values():
                path.write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]


class _TokenClient:
    def __init__(self, expiry):
        self.expiry, self.calls = expiry, 0

    def get(self, url):
        self.calls += 1
        return {"token": "se=1&sig=abc", "msft:expiry": self.expiry}


def test_a_token_already_expired_by_this_clock_is_not_fetched_for_every_read():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc).timestamp()
    client = _TokenClient("2026-12-02T11:00:00Z")  # this machine's clock runs an hour ahead
    cache = TokenCache(clock=lambda: now)
    record = {"kind": "planetary_computer", "token_url": "https://pc.example/api/sas/v1/token/sentinel-2-l2a"}
    for _ in range(5):
        cache.sign("https://x.blob.core.windows.net/b04.tif", record, client)
    assert client.calls == 1
    assert UNSTATED_LIFETIME_S > 60
