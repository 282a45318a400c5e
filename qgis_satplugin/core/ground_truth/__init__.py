"""Ground truth: polygons rasterized onto a pixel grid with exact coverage, ids and conflicts.

``options`` holds the job spec, ``polygons`` checks, repairs, reprojects and clips the
polygons, ``edges`` turns them into edges in pixel units, ``burn_kernel`` (compiled)
burns each strip's shares, winners and conflicts, ``strips`` sizes the strips,
``distance`` measures the distance raster, ``writer`` writes and checks the files, and
``runner`` puts them together.
"""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the step's dependencies.
EXPORTS = {
    "GroundTruthOptions": "options",
    "GroundTruthResult": "runner",
    "OutputPaths": "options",
    "PolygonFile": "options",
    "run": "runner",
    "warm_up": "runner",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
