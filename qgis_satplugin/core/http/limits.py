"""How long the network work may take and how large a request may be: the defaults the options show.

Plain numbers, apart from the client that enforces them, so that the steps' options (and
the plugin's QGIS side, which imports them for its help) load without ``requests``.
"""
# One logical request, attempts and waits included: generous for a 150 MB Process API
# answer on a slow line, short enough that a stalled server is noticed.
DEFAULT_REQUEST_DEADLINE_S = 900.0
# All the network work of one search (a download sets its own, longer one).
DEFAULT_RUN_DEADLINE_S = 1800.0
# A long series over a large area is hours of work; a download run that passes this is
# stalled, and a rerun resumes from its complete files.
DOWNLOAD_RUN_DEADLINE_S = 12 * 3600.0
# The largest Sentinel Hub Process API request, in pixels per side.
MAX_REQUEST_PX = 2500
