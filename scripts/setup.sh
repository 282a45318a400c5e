#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu: QGIS from the distribution, a .venv on QGIS's
# Python, pinned requirements, and a project-local QGIS profile with the plugin enabled.
# Each step is skipped when already done, so `make setup` is cheap to call again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QGIS_PY=/usr/bin/python3
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# pyproj must be the distribution's build (same PROJ library as QGIS); proj-bin lets it
# find PROJ's data from inside a venv. rasterio, shapely and pyogrio are compiled against
# the same GDAL and GEOS as QGIS, hence the -dev packages (see requirements.txt).
APT_PACKAGES="qgis python3-qgis qgis-providers python3-venv python3-pip python3-dev build-essential
  gdal-bin libgdal-dev libgeos-dev python3-pyproj proj-bin"
have_qgis() {
  [ -x /usr/bin/qgis_process.bin ] && command -v gdal_rasterize >/dev/null && command -v proj >/dev/null &&
    command -v gdal-config >/dev/null && command -v geos-config >/dev/null &&
    "$QGIS_PY" -c "import qgis.core, pyproj" >/dev/null 2>&1
}
if ! have_qgis; then
  echo "setup: installing QGIS from the distribution's packages (about a minute)"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv on QGIS's Python ($QGIS_PY) with system site packages"
  "$QGIS_PY" -m venv --system-site-packages .venv
fi
STAMP=.venv/.requirements.sha
WANT=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "setup: installing pinned requirements into .venv (rasterio, shapely and pyogrio compile: about 3 minutes)"
  # The machine's pip config lists local indexes that warn for every package: keep errors only.
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 |
    { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$WANT" > "$STAMP"
fi

# A wheelhouse of the engine and all its extras (PyPI wheels for QGIS's Python version, pip
# included): what `qgis_process run satplugin:installengine -- WHEELHOUSE=...` installs from on a
# machine without internet, and what the tests install the engine from, offline.
WHEELHOUSE=.wheelhouse
ENGINE_WHEELS="numpy==1.26.4 shapely==2.2.0 rasterio==1.4.4 affine==2.4.0 pyproj==3.7.1 requests==2.32.3 setuptools==75.8.0 wheel==0.45.1 pyogrio==0.13.0 pandas==2.3.3 opencv-python-headless==4.10.0.84 numba==0.60.0 llvmlite==0.43.0 onnxruntime==1.31.1 zarr==2.18.7 numcodecs==0.15.2 sentinelhub==3.12.0 dask==2026.8.0 distributed==2026.8.0 pip==24.3.1"
if [ "$(cat "$WHEELHOUSE/.stamp" 2>/dev/null)" != "$ENGINE_WHEELS" ]; then
  echo "setup: downloading the engine's wheels into $WHEELHOUSE (about 250 MB)"
  rm -rf "$WHEELHOUSE"
  # shellcheck disable=SC2086
  .venv/bin/python -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$WHEELHOUSE" $ENGINE_WHEELS 2>&1 |
    { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$ENGINE_WHEELS" > "$WHEELHOUSE/.stamp"
fi

# A project-local QGIS profile: the plugin folder is linked in and enabled there, so
# tests and `scripts/qgis-process` never touch the user's own QGIS settings.
PROFILE="$ROOT/.qgis-profile"
PLUGINS="$PROFILE/profiles/default/python/plugins"
mkdir -p "$PLUGINS"
ln -sfn "$ROOT" "$PLUGINS/satplugin"
if ! grep -qs '^satplugin=true' "$PROFILE/profiles/default/QGIS/QGIS3.ini"; then
  echo "setup: enabling the plugin in $PROFILE"
  "$ROOT/scripts/qgis-process" plugins enable satplugin >/dev/null
fi
echo "setup: ready"
