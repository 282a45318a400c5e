"""A GeoTIFF being written through the C API of the GDAL that rasterio loaded.

The output writer (:mod:`.output_raster`) fills the file's overview levels itself, strip
by strip, and flushes the dataset's cache after each strip. rasterio offers neither (it
writes only the full-resolution bands, and flushes only at close), and ``osgeo.gdal``
has no PyPI wheel, so an engine installed with pip would have no way to write it. These
few calls therefore go to GDAL's C API through ctypes, in the very library that
rasterio's own extension modules link against: one GDAL for the inputs read and the
output written, whatever other GDAL the process holds (QGIS loads its own). They are the
calls ``osgeo.gdal`` made before, in the same order, so with the same GDAL the file is byte
for byte the same (another GDAL version may lay out or compress it differently).
A GDAL failure raises ``RuntimeError`` with GDAL's message, as ``osgeo.gdal`` does with
exceptions on (:func:`..atomic.user_error_for` reads a full disk from it).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_void_p
from functools import lru_cache

import numpy as np

CE_FAILURE = 3
GF_WRITE = 1
GDAL_TYPES = {"float32": 6, "uint16": 2}  # GDT_Float32, GDT_UInt16

_ERR = "err"  # the call returns a CPLErr, checked as well as GDAL's last error
SIGNATURES = {
    "CPLErrorReset": (None, []),
    "CPLPushErrorHandler": (None, [c_void_p]),
    "CPLPopErrorHandler": (None, []),
    "CPLGetLastErrorType": (c_int, []),
    "CPLGetLastErrorMsg": (c_char_p, []),
    "GDALGetDriverByName": (c_void_p, [c_char_p]),
    "GDALCreate": (c_void_p, [c_void_p, c_char_p, c_int, c_int, c_int, c_int, POINTER(c_char_p)]),
    "GDALSetGeoTransform": (_ERR, [c_void_p, POINTER(c_double)]),
    "GDALSetProjection": (_ERR, [c_void_p, c_char_p]),
    "GDALGetRasterBand": (c_void_p, [c_void_p, c_int]),
    "GDALSetRasterNoDataValue": (_ERR, [c_void_p, c_double]),
    "GDALBuildOverviews": (_ERR, [c_void_p, c_char_p, c_int, POINTER(c_int), c_int, POINTER(c_int), c_void_p,
                                  c_void_p]),
    "GDALDatasetRasterIOEx": (_ERR, [c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p, c_int, c_int, c_int, c_int,
                                     POINTER(c_int), c_int64, c_int64, c_int64, c_void_p]),
    "GDALRasterIOEx": (_ERR, [c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p, c_int, c_int, c_int, c_int64,
                              c_int64, c_void_p]),
    "GDALGetOverview": (c_void_p, [c_void_p, c_int]),
    "GDALGetRasterBandXSize": (c_int, [c_void_p]),
    "GDALGetRasterBandYSize": (c_int, [c_void_p]),
    # void before GDAL 3.7, CPLErr since: declared void, so the last error says whether they failed.
    "GDALFlushCache": (None, [c_void_p]),
    "GDALSetDescription": (None, [c_void_p, c_char_p]),
    "GDALSetRasterUnitType": (_ERR, [c_void_p, c_char_p]),
    "GDALSetMetadata": (_ERR, [c_void_p, POINTER(c_char_p), c_char_p]),
    "GDALSetRasterScale": (_ERR, [c_void_p, c_double]),
    "GDALSetRasterOffset": (_ERR, [c_void_p, c_double]),
    "GDALClose": (None, [c_void_p]),  # writes the last blocks and the directory: checked as above
}


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """rasterio's GDAL, with the signatures above declared."""
    import rasterio._io

    # On Linux and macOS a symbol looked up through a loaded module's handle is searched
    # in that module and the libraries it depends on: rasterio's GDAL (wheel or system).
    lib = ctypes.CDLL(rasterio._io.__file__)
    if not hasattr(lib, "GDALCreate"):
        if os.name != "nt":
            raise RuntimeError(f"GDAL's functions are not reachable through {rasterio._io.__file__}.")
        lib = _loaded_windows_gdal(os.path.dirname(os.path.dirname(rasterio.__file__)))
    for name, (restype, argtypes) in SIGNATURES.items():
        function = getattr(lib, name)
        function.restype = c_int if restype == _ERR else restype
        function.argtypes = argtypes
    return lib


def _loaded_windows_gdal(site_packages: str) -> ctypes.CDLL:
    """The GDAL DLL already loaded in this process by rasterio's modules, found among its modules.

    Windows looks a symbol up in the module itself only. In QGIS the process holds QGIS's own
    GDAL too: a DLL under rasterio's site-packages (the wheel's ``rasterio.libs``) comes first.
    """
    from ctypes import wintypes

    kernel32, psapi = ctypes.WinDLL("kernel32"), ctypes.WinDLL("psapi")
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.GetModuleFileNameW.argtypes = [wintypes.HMODULE, wintypes.LPWSTR, wintypes.DWORD]
    psapi.EnumProcessModules.argtypes = [wintypes.HANDLE, POINTER(wintypes.HMODULE), wintypes.DWORD,
                                         POINTER(wintypes.DWORD)]
    modules, needed = (wintypes.HMODULE * 4096)(), wintypes.DWORD()
    psapi.EnumProcessModules(kernel32.GetCurrentProcess(), modules, ctypes.sizeof(modules), ctypes.byref(needed))
    name = ctypes.create_unicode_buffer(32768)
    candidates = []
    for handle in modules[: needed.value // ctypes.sizeof(wintypes.HMODULE)]:
        kernel32.GetModuleFileNameW(handle, name, len(name))
        base = os.path.basename(name.value).lower()
        if base.startswith(("gdal", "libgdal")) and base.endswith(".dll"):
            candidates.append(name.value)
    inside = os.path.normcase(os.path.abspath(site_packages))
    candidates.sort(key=lambda path: not os.path.normcase(path).startswith(inside))
    for path in candidates:
        lib = ctypes.CDLL(path)
        if hasattr(lib, "GDALCreate"):  # not a GDAL plugin DLL (gdal_netCDF.dll, ...)
            return lib
    raise RuntimeError("The GDAL library that rasterio uses is not loaded in this process.")


def _call(name: str, *args):
    """Call GDAL's ``name``; raise ``RuntimeError`` with GDAL's message when it fails."""
    lib = library()
    # GDAL's default handler would also print "ERROR 1: ..." to stderr; the error is raised instead.
    lib.CPLPushErrorHandler(ctypes.cast(lib.CPLQuietErrorHandler, c_void_p))
    try:
        lib.CPLErrorReset()
        result = getattr(lib, name)(*args)
        failed = lib.CPLGetLastErrorType() >= CE_FAILURE or (SIGNATURES[name][0] == _ERR and result >= CE_FAILURE)
        message = (lib.CPLGetLastErrorMsg() or b"").decode("utf-8", "replace") if failed else ""
    finally:
        lib.CPLPopErrorHandler()
    if failed:
        raise RuntimeError(message or f"{name} failed")
    return result


def _strings(values) -> ctypes.Array:
    """A NULL-terminated C list of strings (GDAL's CSL)."""
    encoded = [str(v).encode("utf-8") for v in values]
    return (c_char_p * (len(encoded) + 1))(*encoded, None)


def _pointer(array: np.ndarray) -> c_void_p:
    return c_void_p(array.ctypes.data)


class GeoTiff:
    """One GeoTIFF created with ``options`` (GDAL creation options), written band-sequential."""

    def __init__(self, path, width: int, height: int, count: int, dtype: str, options: list):
        self.dtype = np.dtype(dtype).name
        self.gdal_type = GDAL_TYPES[self.dtype]
        driver = _call("GDALGetDriverByName", b"GTiff")
        handle = _call("GDALCreate", driver, os.fspath(path).encode("utf-8"), width, height, count, self.gdal_type,
                       _strings(options))
        if not handle:
            raise RuntimeError(f"GDAL could not create {path}")
        self._handle = handle
        self.count = count

    def band(self, index: int) -> int:
        return _call("GDALGetRasterBand", self._handle, index)

    def set_georeferencing(self, geo_transform, wkt: str) -> None:
        _call("GDALSetGeoTransform", self._handle, (c_double * 6)(*geo_transform))
        _call("GDALSetProjection", self._handle, wkt.encode("utf-8"))

    def set_nodata(self, value: float) -> None:
        for i in range(1, self.count + 1):
            _call("GDALSetRasterNoDataValue", self.band(i), float(value))

    def allocate_overviews(self, factors: list) -> None:
        """Empty overview levels (resampling NONE): their blocks are written as the rows arrive."""
        _call("GDALBuildOverviews", self._handle, b"NONE", len(factors), (c_int * len(factors))(*factors), 0, None,
              None, None)

    def write(self, data: np.ndarray, row: int) -> None:
        """Contiguous ``[count, rows, width]`` values at ``row``, every band."""
        if data.dtype != np.dtype(self.dtype) or not data.flags.c_contiguous:
            raise ValueError(f"write takes C-contiguous {self.dtype} values, not {data.dtype}")
        bands, rows, cols = data.shape
        band_map = (c_int * bands)(*range(1, bands + 1))
        _call("GDALDatasetRasterIOEx", self._handle, GF_WRITE, 0, row, cols, rows, _pointer(data), cols, rows,
              self.gdal_type, bands, band_map, 0, 0, 0, None)

    def overview_size(self, band: int, level: int) -> tuple[int, int]:
        overview = _call("GDALGetOverview", self.band(band), level)
        return _call("GDALGetRasterBandXSize", overview), _call("GDALGetRasterBandYSize", overview)

    def write_overview(self, band: int, level: int, values: np.ndarray, row: int) -> None:
        """2-D ``values`` (any strides) into overview ``level`` of ``band`` at ``row``."""
        overview = _call("GDALGetOverview", self.band(band), level)
        if values.dtype != np.dtype(self.dtype):
            raise ValueError(f"write_overview takes {self.dtype} values, not {values.dtype}")
        rows, cols = values.shape
        _call("GDALRasterIOEx", overview, GF_WRITE, 0, row, cols, rows, _pointer(values), cols, rows, self.gdal_type,
              values.strides[1], values.strides[0], None)

    def flush(self) -> None:
        _call("GDALFlushCache", self._handle)

    def describe_band(self, index: int, description: str, unit: str, metadata: dict, scale=None) -> None:
        band = self.band(index)
        _call("GDALSetDescription", band, str(description).encode("utf-8"))
        _call("GDALSetRasterUnitType", band, str(unit).encode("utf-8"))
        self._set_metadata(band, metadata)
        if scale is not None:
            _call("GDALSetRasterScale", band, float(scale))
            _call("GDALSetRasterOffset", band, 0.0)

    def set_metadata(self, metadata: dict) -> None:
        self._set_metadata(self._handle, metadata)

    @staticmethod
    def _set_metadata(handle, metadata: dict) -> None:
        _call("GDALSetMetadata", handle, _strings(f"{k}={v}" for k, v in metadata.items()), b"")

    def close(self, *, check: bool = True) -> None:
        """Close the file (GDAL writes what its cache still holds); a second call does nothing.

        ``check=False`` after a failure: the file is being dropped, and a full disk that made
        the write fail makes the close fail too; that second error must not hide the first.
        """
        handle, self._handle = self._handle, None
        if handle:
            if check:
                _call("GDALClose", handle)
            else:
                lib = library()
                lib.CPLPushErrorHandler(ctypes.cast(lib.CPLQuietErrorHandler, c_void_p))
                try:
                    lib.GDALClose(handle)
                finally:
                    lib.CPLPopErrorHandler()
