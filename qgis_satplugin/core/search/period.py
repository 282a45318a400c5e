"""Search periods: what "from start to end" means, and seasons that cross New Year.

A date given as an end means the whole of that day: users pick days in a calendar, and
a product sensed at 10:30 on the last day must be found.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone

from ..errors import SatPluginError
from ..products import parse_datetime


def normalise_period(start, end) -> tuple[datetime, datetime]:
    """Aware UTC datetimes; a plain ``date`` end extends to the end of that day."""
    if start is None or end is None:
        raise SatPluginError("Give both a start and an end date for the search.")
    start_dt = parse_datetime(start)
    if isinstance(end, date) and not isinstance(end, datetime):
        end_dt = datetime.combine(end, time(23, 59, 59, 999999), tzinfo=timezone.utc)
    elif isinstance(end, str) and len(end.strip()) == 10:
        end_dt = datetime.combine(date.fromisoformat(end.strip()), time(23, 59, 59, 999999), tzinfo=timezone.utc)
    else:
        end_dt = parse_datetime(end)
    if end_dt < start_dt:
        raise SatPluginError(
            f"The search ends ({end_dt:%Y-%m-%d}) before it starts ({start_dt:%Y-%m-%d}). "
            "For a season across New Year, give full dates, e.g. 2023-11-01 to 2024-02-28."
        )
    return start_dt, end_dt


def stac_interval(start: datetime, end: datetime) -> str:
    """The RFC 3339 ``start/end`` interval that STAC and Sentinel Hub searches take."""
    return f"{_rfc3339(start)}/{_rfc3339(end)}"


def _rfc3339(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_day(value) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.strip().split("-")
        if len(parts) != 2:
            raise SatPluginError(f"A season day must look like MM-DD, got {value!r}.")
        month, day = int(parts[0]), int(parts[1])
    else:
        month, day = (int(v) for v in value)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise SatPluginError(f"{value!r} is not a month and day.")
    return month, day


def _clamped(year: int, month: int, day: int) -> date:
    # Feb 29 in a common year becomes Feb 28 rather than an error.
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def season_periods(years, start_month_day, end_month_day) -> list[tuple[date, date]]:
    """The same season in several years, e.g. ``("11-01", "02-28")`` for a winter.

    When the season's end comes before its start in the calendar, it crosses New Year:
    the season that starts in year Y ends in year Y + 1.
    """
    sm, sd = _month_day(start_month_day)
    em, ed = _month_day(end_month_day)
    crosses = (em, ed) < (sm, sd)
    periods = []
    for year in sorted(set(int(y) for y in years)):
        periods.append((_clamped(year, sm, sd), _clamped(year + 1 if crosses else year, em, ed)))
    return periods


def days_between(a: datetime, b: datetime) -> float:
    """Signed days from ``a`` to ``b``."""
    return (b - a) / timedelta(days=1)
