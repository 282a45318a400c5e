"""Fixtures shared by the QGIS tests of the imagery steps: a small local product library."""
from datetime import datetime, timezone

import numpy as np
import pytest
from qgis.core import QgsProject, QgsVectorLayer

from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.tests.fixtures.synthetic_scenes import write_product

# Products on a 1.2 km square; the AOI is a smaller square inside it.
GRID = PixelGrid.square("EPSG:32633", 460020.0, 5100000.0, 10.0, 120, 120)
AOI = "14.4871,14.4948,46.0444,46.0497 [EPSG:4326]"
DATES = [("2023-05-02", 3), ("2023-06-11", 8), ("2023-07-21", 20)]
BASELINES = ["03.01", "05.09", "05.09"]  # the first date predates the +1000 DN offset


def stored_basic_auth(name: str, user: str, secret: str) -> str:
    """A Basic config in QGIS's authentication database (user = client id); its id."""
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("satplugin-test-master", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName(name)
    config.setConfig("username", user)
    config.setConfig("password", secret)
    assert manager.storeAuthenticationConfig(config)[0]
    return config.id()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Three synthetic L2A products over GRID, one of them before the +1000 DN baseline."""
    folder = tmp_path_factory.mktemp("library")
    classes = (np.arange(120)[:, None] // 30 + np.arange(120)[None, :] // 30).astype(np.uint8) % 5
    for index, ((day, cloud), baseline) in enumerate(zip(DATES, BASELINES)):
        when = datetime.fromisoformat(day).replace(hour=10, minute=0, second=31, tzinfo=timezone.utc)
        write_product(folder, GRID, classes, when, cloud, seed=index, baseline=baseline)
    return folder


@pytest.fixture
def products_layer(satplugin_provider, library, tmp_path):
    import processing

    result = processing.run(
        "satplugin:searchproducts",
        {"BACKEND": 3, "SERVICE_URL": str(library), "AOI": AOI, "START_DATE": "2023-04-01",
         "END_DATE": "2023-09-30", "MAX_PRODUCTS": 0, "OUTPUT": str(tmp_path / "products.gpkg")},
    )
    layer = QgsVectorLayer(f"{result['OUTPUT']}|layername=products", "products", "ogr")
    assert layer.isValid() and layer.featureCount() == 3
    QgsProject.instance().addMapLayer(layer)
    return layer


