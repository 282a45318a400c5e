"""One radiometric scale for every date: undo the +1000 DN offset of baseline 04.00.

Since processing baseline 04.00 (January 2022) ESA adds 1000 to every digital number
(``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` = -1000) so that negative reflectances survive
in an unsigned integer. A time series mixing both baselines would show a jump of 0.1
reflectance that a model learns as a season effect, so by default the offset is removed
and every file holds DN = reflectance x 10000.

Whether the provider already removed the offset comes from the search's output
(``download["boa_offset_applied"]``: Earth Search's flag, False for ESA's own SAFE files
and the Sentinel Hub Process API's raw numbers). When the source does not say, the
baseline decides and the reason recorded with the file says that it was not stated
(``provider_removed`` None), so a guess is never silent.

A valid pixel never turns into no-data here: after the subtraction valid pixels clip
at 1 DN (reflectance 0.0001), so 0 keeps meaning "no data" only, as in old baselines
where valid numbers start at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..sentinel2 import BOA_OFFSET_DN, OFFSET_BASELINE, OFFSET_EPOCH, REFLECTANCE_SCALE, baseline_key

MIN_VALID_DN = 1


@dataclass(frozen=True)
class Harmonization:
    """What happens to one product's numbers: ``subtract_dn`` and why, for the metadata."""

    subtract_dn: int
    has_offset: bool  # the source numbers carry the +1000 offset
    reason: str
    provider_removed: bool | None = None  # what the source says; None: it does not say

    def as_dict(self) -> dict:
        return {
            "subtract_dn": self.subtract_dn,
            "source_offset_dn": BOA_OFFSET_DN if self.has_offset else 0,
            "provider_removed_offset": self.provider_removed,
            "reason": self.reason,
        }

    @property
    def assumed(self) -> bool:
        """The baseline decided alone, on a source that does not say whether its offset was removed."""
        return self.provider_removed is None and self.has_offset

    @property
    def band_offset(self) -> float:
        """The per-band offset in the output: scale * DN + offset = reflectance."""
        left = (BOA_OFFSET_DN if self.has_offset else 0) - self.subtract_dn
        return -left * REFLECTANCE_SCALE


def product_has_offset(baseline: str | None, when: datetime | None, provider_removed: bool | None = None) -> tuple[bool, str]:
    """Whether a product's numbers carry the offset, and the evidence.

    ``provider_removed``: True when the source says the offset was already removed,
    False when it says it was not, None when it does not say.
    """
    if provider_removed:
        return False, "the provider already removed the offset (earthsearch:boa_offset_applied)"
    key = baseline_key(baseline)
    if key != (-1, -1):
        if key >= OFFSET_BASELINE:
            why = f"baseline {baseline} >= 04.00 carries the +1000 DN offset"
        else:
            return False, f"baseline {baseline} < 04.00 has no offset"
    elif when is not None and when >= OFFSET_EPOCH:
        why = "baseline unknown; acquired after 2022-01-25, so assumed >= 04.00"
    else:
        return False, "baseline unknown; acquired before 2022-01-25, so assumed < 04.00"
    if provider_removed is None:
        why += " (the source does not say whether its provider already removed it, so the baseline decides)"
    return True, why


def plan_harmonization(baseline, when, harmonize: bool, provider_removed: bool | None = None) -> Harmonization:
    has_offset, why = product_has_offset(baseline, when, provider_removed)
    if not harmonize:
        return Harmonization(0, has_offset, f"harmonization off; {why}", provider_removed)
    if has_offset:
        return Harmonization(BOA_OFFSET_DN, True, f"subtracted {BOA_OFFSET_DN} DN: {why}", provider_removed)
    return Harmonization(0, False, f"nothing to subtract: {why}", provider_removed)


def apply_harmonization(data: np.ndarray, subtract_dn: int) -> np.ndarray:
    """``data - subtract_dn`` for valid (non-zero) pixels, clipped at 1; zeros stay zeros."""
    if not subtract_dn:
        return data
    valid = data != 0
    out = np.zeros_like(data)
    shifted = data.astype(np.int32) - subtract_dn
    out[valid] = np.clip(shifted[valid], MIN_VALID_DN, np.iinfo(data.dtype).max).astype(data.dtype)
    return out
