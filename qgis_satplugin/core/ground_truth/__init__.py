"""Ground truth: polygons rasterized onto a pixel grid with exact coverage, ids and conflicts."""
from .run import GroundTruthResult, OutputPaths, rasterize_ground_truth

__all__ = ["GroundTruthResult", "OutputPaths", "rasterize_ground_truth"]
