"""The repository imported the way QGIS imports it: as the package ``satplugin``.

The repository root is the plugin folder. The tests, the demo, the benchmarks and the
workflow generator import it through a link named ``satplugin`` in a temporary folder, so
that every module (the core, the test fixtures, the loopback servers) is loaded once, under
one name, and objects passed between them are of one class.
"""
import atexit
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def link_plugin_package() -> Path:
    """Put a ``satplugin`` link to the repository on ``sys.path`` (once); return its folder."""
    for entry in sys.path:
        link = Path(entry) / "satplugin"
        if entry and link.is_symlink() and link.resolve() == ROOT:
            return Path(entry)
    parent = Path(tempfile.mkdtemp(prefix="satplugin-path-"))
    link = parent / "satplugin"
    link.symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(parent))
    atexit.register(_remove, link)
    return parent


def _remove(link: Path) -> None:
    # The link itself, never what it points to; then its (empty) folder.
    try:
        link.unlink()
        link.parent.rmdir()
    except OSError:
        pass
