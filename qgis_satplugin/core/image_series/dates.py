"""Acquisition dates: where they come from, the season window, and even subsampling.

A list of rasters carries its dates in a tag (``ACQUISITION_DATETIME``, as the download
step writes) or in the file name (``20230612``, ``2023-06-12``, ``20230612T101559``).
Both are read here so that a renamed file and a tagged file give the same series, and a
file with neither is refused by name rather than silently placed at an arbitrary date.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np

from ..errors import SatPluginError

DATE_TAG = "ACQUISITION_DATETIME"

# A date of 1984..2099 not glued to other digits, optionally with a T-separated time.
_NAME_DATE = re.compile(
    r"(?<!\d)((?:19|20)\d\d)(-?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])"
    r"(?:T(\d\d)(?::?)(\d\d)(?::?)(\d\d))?(?!\d)"
)


def parse_iso_datetime(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset; naive = UTC)."""
    value = str(text).strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SatPluginError(f"{text!r} is not an ISO 8601 date and time.") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def date_from_name(name: str) -> datetime | None:
    """The first plausible date (and time) in a file name, or None."""
    for m in _NAME_DATE.finditer(name):
        year, _, month, day, hh, mm, ss = m.groups()
        try:
            return datetime(int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=timezone.utc)
        except ValueError:
            continue  # 20230231 and the like: look further
    return None


def iso_z(when: datetime) -> str:
    """``2023-06-12T10:15:59Z``: the one text form used in every output."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of_year(when: datetime) -> int:
    return when.timetuple().tm_yday


def parse_month_day(value, what: str) -> tuple[int, int]:
    """``"MM-DD"`` -> (month, day); 02-29 is allowed (it matches Feb 29 in leap years only)."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d{1,2})-(\d{1,2})", text)
    if not m:
        raise SatPluginError(f"{what} must look like MM-DD (e.g. 11-01), got {value!r}.")
    month, day = int(m.group(1)), int(m.group(2))
    days_in = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= days_in[month - 1]):
        raise SatPluginError(f"{what} {value!r} is not a day of the year.")
    return month, day


def season_mask(dates: list[datetime], season_start=None, season_end=None) -> np.ndarray:
    """True for dates inside the month-day window; the window may cross New Year.

    ``11-01``..``02-28`` keeps November to February of any year. A missing start means
    01-01, a missing end 12-31; both ends are inclusive (whole days).
    """
    start = parse_month_day(season_start, "The season start") if season_start else (1, 1)
    end = parse_month_day(season_end, "The season end") if season_end else (12, 31)
    keys = [(d.month, d.day) for d in dates]
    if start <= end:
        return np.array([start <= k <= end for k in keys], dtype=bool)
    return np.array([k >= start or k <= end for k in keys], dtype=bool)


def even_in_time(times: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` of the sorted ``times`` spread evenly over their span.

    Each of ``k`` equally spaced target times (first to last) takes the closest date not
    taken yet (ties: the earlier), so the first and last dates are always kept and the
    choice is deterministic.
    """
    times = np.asarray(times, dtype=np.float64)
    n = times.size
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.arange(0)
    targets = np.linspace(times[0], times[-1], k) if k > 1 else times[:1]
    taken = np.zeros(n, dtype=bool)
    out = []
    for target in targets:
        distance = np.where(taken, np.inf, np.abs(times - target))
        pick = int(np.argmin(distance))  # argmin returns the first (earliest) of equal distances
        taken[pick] = True
        out.append(pick)
    return np.sort(np.array(out, dtype=np.int64))
