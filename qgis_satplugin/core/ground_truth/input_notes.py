"""What the log says about the polygons' classes and ids before the burn: allowed, but likely not meant.

Neither refuses the run: a parcel id shared by pieces of one field, or a class 0 that
marks land to leave out, can be what the user wants. Both change what the rasters mean,
so the user hears of it.
"""
from __future__ import annotations

import numpy as np

from ..class_table import ClassTable
from ..feedback import Feedback

EXAMPLES = 3


def note_shared_parcel_ids(ids: np.ndarray, class_of: np.ndarray, table: ClassTable, feedback: Feedback) -> None:
    """A warning for parcel ids given to several polygons of different classes (the id raster cannot
    tell them apart, so anything keyed on the id mixes two crops), a note for those of one class."""
    distinct, counts = np.unique(ids, return_counts=True)
    shared = distinct[counts > 1]
    if not shared.size:
        return
    pairs = np.unique(np.stack([ids, class_of]), axis=1)  # each (id, class) once
    pair_ids, classes_per_id = np.unique(pairs[0], return_counts=True)
    mixed = pair_ids[classes_per_id > 1]
    if mixed.size:
        value_of = {cid: value for value, cid in table.ids.items()}
        examples = "; ".join(
            f"{int(pid)}: " + ", ".join(str(table.names.get(int(c)) or value_of.get(int(c), c))
                                        for c in pairs[1][pairs[0] == pid])
            for pid in mixed[:EXAMPLES]
        )
        feedback.log(
            f"Warning: {mixed.size} parcel ids are each given to polygons of different classes ({examples}"
            f"{'; …' if mixed.size > EXAMPLES else ''}). Their pixels share one id in the id raster, so per-parcel "
            "series and exports keyed on it mix those classes; give each parcel its own id (or leave ID_FIELD "
            "empty to number the polygons)."
        )
    if shared.size > mixed.size:
        feedback.log(f"{shared.size - mixed.size} parcel ids are each given to several polygons of one class "
                     f"(such as {int(np.setdiff1d(shared, mixed)[0])}): each is taken as one parcel in pieces.")


def note_background_class(class_of: np.ndarray, feedback: Feedback) -> None:
    """Class 0 is the background: such polygons label their pixels background and, being polygons,
    still win pixels from the polygons that overlap them (the largest share wins)."""
    n = int((class_of == 0).sum())
    if n:
        feedback.log(
            f"Warning: {n} polygons have class 0, which is the class raster's background: their pixels are "
            "labelled background (the id raster keeps their parcel ids) and, as any polygon does, they win the "
            "pixels they cover most from polygons that overlap them. Filter them out if they are not meant as "
            "background."
        )
