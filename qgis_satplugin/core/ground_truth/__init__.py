"""Ground truth: polygons rasterized onto a pixel grid with exact coverage, ids and conflicts.

``options`` holds the job spec, ``polygons`` checks, repairs, reprojects and clips the
polygons, ``strips`` resolves each strip's labels, ``distance`` measures the distance
raster, ``writer`` writes and checks the files, and ``run`` puts them together.
"""
from .options import GroundTruthOptions, OutputPaths
from .run import GroundTruthResult, run

__all__ = ["GroundTruthOptions", "GroundTruthResult", "OutputPaths", "run"]
