"""Errors the user should read: one clear sentence about what to change."""


class SatPluginError(Exception):
    """Bad input or an environment problem, reported to the user as-is."""


class Canceled(SatPluginError):
    """The user canceled; nothing was left half-written."""

    def __init__(self, message="Canceled by the user; no output was written."):
        super().__init__(message)
