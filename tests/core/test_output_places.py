"""Output places refused before any work, with the reason a user can act on (core/atomic.py, export/staging.py)."""
import pytest

from satplugin.qgis_satplugin.core.atomic import check_parent_folder
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export.staging import check_target
from tests.conftest import with_bind_mount


def test_an_output_under_a_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / "afile").write_text("mine")
    for output in (tmp_path / "afile" / "x", tmp_path / "afile" / "x" / "y.tif"):
        with pytest.raises(SatPluginError, match=rf"^Cannot write {output}: {tmp_path / 'afile'} is a file, not a folder; "
                                                 r"choose another place\.$"):
            check_parent_folder(output)
    with pytest.raises(SatPluginError, match=rf"^Cannot write .*: {tmp_path / 'afile'} is a file, not a folder"):
        check_target(tmp_path / "afile" / "dataset")
    with pytest.raises(SatPluginError, match=rf"the folder {tmp_path / 'missing'} does not exist; create it"):
        check_parent_folder(tmp_path / "missing" / "y.tif")
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_export_onto_a_mount_point_is_refused_before_any_work(tmp_path, engine_python):
    """The dataset is staged beside its folder and renamed onto it, which a mount point refuses (EBUSY)
    after all the work. A bind mount (as a Docker volume is), in a user and mount namespace of its own."""
    (tmp_path / "volume").mkdir()
    (tmp_path / "mnt").mkdir()
    check = "import sys; from satplugin_engine.export.staging import check_target; check_target(sys.argv[1])"

    def check_in_namespace(target):
        return with_bind_mount(tmp_path / "volume", tmp_path / "mnt", engine_python, "-c", check, target)

    refused = check_in_namespace(tmp_path / "mnt")
    assert refused.returncode == 1
    assert (f"SatPluginError: {tmp_path / 'mnt'} is the root of a volume of its own (a mount point), which the export "
            f"cannot replace as a whole; choose a folder inside it, such as {tmp_path / 'mnt' / 'dataset'}. Nothing was "
            "changed.") in refused.stderr, refused.stderr
    inside = check_in_namespace(tmp_path / "mnt" / "dataset")
    assert inside.returncode == 0, inside.stderr
    assert check_in_namespace(tmp_path / "volume").returncode == 0  # the mounted folder itself, by its own name
