"""QGIS Processing algorithms: thin adapters from QGIS parameters to the core."""
