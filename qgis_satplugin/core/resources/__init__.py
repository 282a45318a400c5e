"""Files that ship with the code: the default super-resolution models and the modeler workflows.

One lookup for all of them, so nothing finds a shipped file by counting parent folders.
The engine wheel carries ``superres/``; the plugin zip carries both.
"""
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """The path of a shipped file, e.g. ``resource_path("superres", "s2_sr_x2_rgbn.onnx")``."""
    return FOLDER.joinpath(*parts)
