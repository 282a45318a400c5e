"""One feedback protocol for every step: progress on one scale, log lines, cancel checks.

In the spirit of ``QgsProcessingMultiStepFeedback``, without QGIS. Progress is a fraction
from 0 to 1 everywhere; a multi-step job hands each part a ``sub_range`` view, so a part
reports its own 0..1 and the whole moves through its share. Everything a feedback carries
is plain (a float, a string), so a run in a child process can stream it to its parent as
JSON lines (:class:`JsonLinesFeedback` in the child, :func:`replay_event` in the parent).
"""
from __future__ import annotations

import json
import threading
from typing import Callable, Optional

from .errors import Canceled


class Feedback:
    """Progress, log and cancel for one run.

    ``progress`` receives fractions in [0, 1] (never decreasing), ``log`` one line of text
    per call, ``is_canceled`` is polled between units of work. All three are optional: a
    bare ``Feedback()`` is silent and never canceled.
    """

    def __init__(
        self,
        progress: Optional[Callable[[float], None]] = None,
        log: Optional[Callable[[str], None]] = None,
        is_canceled: Optional[Callable[[], bool]] = None,
    ):
        self._progress = progress
        self._log = log
        self._is_canceled = is_canceled
        self._last = 0.0
        # Worker threads may report too: the check against the last value is atomic.
        self._lock = threading.Lock()

    @classmethod
    def of(cls, feedback: "Feedback | None") -> "Feedback":
        """The given feedback, or a silent one."""
        return feedback if feedback is not None else cls()

    def set_progress(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self._lock:
            if fraction < self._last:  # a late report from a slower thread does not move back
                return
            self._last = fraction
        if self._progress is not None:
            self._progress(fraction)

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(str(message))

    def is_canceled(self) -> bool:
        return bool(self._is_canceled and self._is_canceled())

    def check_canceled(self, message: str | None = None) -> None:
        """Raise :class:`Canceled` (its message, or the standard one) when the user asked to stop."""
        if self.is_canceled():
            raise Canceled() if message is None else Canceled(message)

    def sub_range(self, start: float, end: float) -> "Feedback":
        """A feedback whose 0..1 is this one's ``start``..``end``; log and cancel pass through."""
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"a sub-range lies within 0..1 and ends after it starts, not {start}..{end}")
        return Feedback(
            progress=lambda fraction: self.set_progress(start + (end - start) * fraction),
            log=self.log,
            is_canceled=self.is_canceled,
        )


class JsonLinesFeedback(Feedback):
    """A feedback that writes each report as one JSON line to ``stream`` (a child's stdout).

    ``{"progress": 0.25}`` and ``{"log": "…"}``; the parent applies them with
    :func:`replay_event`. Cancel comes from ``is_canceled`` (in a child process: a flag set
    by the parent's signal).
    """

    def __init__(self, stream, is_canceled: Optional[Callable[[], bool]] = None):
        write_lock = threading.Lock()

        def emit(event: dict) -> None:
            with write_lock:
                stream.write(json.dumps(event) + "\n")
                stream.flush()

        super().__init__(
            progress=lambda fraction: emit({"progress": fraction}),
            log=lambda message: emit({"log": message}),
            is_canceled=is_canceled,
        )


def replay_event(line: str, feedback: Feedback) -> bool:
    """Apply one line written by :class:`JsonLinesFeedback` to ``feedback``.

    Returns False for a line that is not a feedback event (the caller decides what it is).
    """
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict) or len(event) != 1:
        return False
    if isinstance(event.get("progress"), (int, float)) and not isinstance(event.get("progress"), bool):
        feedback.set_progress(event["progress"])
        return True
    if isinstance(event.get("log"), str):
        feedback.log(event["log"])
        return True
    return False
