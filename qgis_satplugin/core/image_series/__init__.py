"""The image series: the download folder format (manifest.json, one writer, one reader) and image dates.

* :mod:`.manifest`: the only code that knows ``manifest.json``. ``write_manifest`` (the
  download's writer, entries from ``file_entry``), ``load_manifest`` (the one strict reader,
  a :class:`~.manifest.Manifest`), ``read_manifest`` (the download's resume view: the
  manifest or None) and ``verify_listed_files`` (sizes and checksums of the listed files).
* :mod:`.reader`: the export and super-resolution view, ``open_image_series`` (a download
  folder through ``manifest_images``, or rasters one date each) -> :class:`~.reader.ImageSeries`.
* :mod:`.dates`: acquisition dates from tags and names, the season window, even subsampling.
"""
