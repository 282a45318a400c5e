"""Where a product's files may be: the one rule for file references from catalogues and data files.

A remote item's assets are http(s) URLs only; a relative one is resolved against the
item's own URL, so it stays on that URL's scheme. Anything else (an absolute local path,
``file://`` or ``s3://``, a GDAL virtual path such as ``/vsicurl/`` or ``/vsis3/``) is
refused: opened as given, it would put a local file's pixels into the dataset, or make
GDAL send requests to a host the user never chose.

A local product's files stay inside the product: the paths its metadata lists are
relative, without ``..``, and what a product list says about a local product must point
into its folder or zip.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

_HTTP = ("http", "https")
# Why an s3:// asset cannot be fetched, and what to do instead (said by the search and the download).
S3_WHY = "Earth Search keeps its L1C JPEG 2000s in a requester-pays S3 bucket that needs an AWS account"
S3_ADVICE = "search L1C with CDSE or Sentinel Hub to download it"
_DRIVE = re.compile(r"^[A-Za-z]:")
_VSIZIP = "/vsizip/"


def is_http_url(href) -> bool:
    """An absolute http(s) URL with a host."""
    if not isinstance(href, str):
        return False
    parts = urlsplit(href.strip())
    try:
        parts.port  # a port that is not a number (or out of range) makes no address
    except ValueError:
        return False
    return parts.scheme.lower() in _HTTP and bool(parts.hostname)


def remote_asset_url(href, base_url: str | None) -> str | None:
    """The URL to read a remote item's asset from, or None when the href must be refused.

    ``base_url`` is the item's own URL (its ``self`` link, else the page it came in).
    """
    if not isinstance(href, str) or not href.strip():
        return None
    text = href.strip()
    if is_http_url(text):
        return text
    if urlsplit(text).scheme or "\\" in text or text.startswith(("/", "~")) or _DRIVE.match(text):
        # Another scheme, a local or GDAL path, or a network-path reference ("//host").
        return None
    if not is_http_url(base_url):
        return None
    resolved = urljoin(base_url.strip(), text)
    same_scheme = urlsplit(resolved).scheme.lower() == urlsplit(base_url.strip()).scheme.lower()
    return resolved if same_scheme and is_http_url(resolved) else None


def inside_product(relative) -> bool:
    """Whether a path from a product's own metadata stays inside the product."""
    if not isinstance(relative, str):
        return False
    text = relative.strip().replace("\\", "/")
    if not text or text.startswith(("/", "~")) or _DRIVE.match(text) or "://" in text:
        return False
    return ".." not in text.split("/")


def local_file_in_product(href, product_path) -> bool:
    """Whether a local product's file (a path, or a ``/vsizip/`` path into its zip) lies inside the product."""
    if not isinstance(href, str) or not href or not product_path or str(product_path).startswith("/vsi"):
        return False
    product = Path(product_path).resolve()
    if href.startswith(_VSIZIP):
        archive = str(product)
        rest = href[len(_VSIZIP):]
        return rest.startswith(archive + "/") and inside_product(rest[len(archive) + 1 :])
    if href.startswith("/vsi"):
        return False
    try:
        Path(href).resolve().relative_to(product)
    except (ValueError, OSError):
        return False
    return True
