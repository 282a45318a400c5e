"""The image series: the download folder format (manifest.json, one writer, one reader) and image dates."""
