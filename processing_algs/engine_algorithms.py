"""satplugin:installengine and satplugin:removeengine: the managed engine, installed, updated, removed.

The steps run in the engine (see ``qgis_satplugin/engine_env``); these two algorithms are
how a user gets it, from the toolbox, the message bar's *Install engine…* or
``qgis_process run satplugin:installengine``. They run in QGIS's own Python and need
nothing but what QGIS ships.
"""
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
)

from ..qgis_satplugin.core import __version__
from ..qgis_satplugin.core.errors import SatPluginError
from ..qgis_satplugin.core.feedback import Feedback
from ..qgis_satplugin.engine_env.install import engine_source, install_engine, installed_version, plan_install, remove_engine
from ..qgis_satplugin.engine_env.locate import managed_folder, venv_python
from .base import ConsoleLines, SatPluginAlgorithm, core_errors
from .network_proxy import proxy_for_child

PLUGIN_FOLDER = Path(__file__).resolve().parent.parent


def managed_engine_folder() -> Path:
    return managed_folder(QgsApplication.qgisSettingsDirPath())


class _EngineAlgorithm(SatPluginAlgorithm):
    """What the two share: they run without an engine (that is how there comes to be one), and once,
    not as a batch (the dialog offers no "Run as Batch Process…")."""

    GROUP = "engine"

    def canExecute(self):  # noqa: N802 (QGIS API)
        return True, ""

    def flags(self):
        return super().flags() & ~QgsProcessingAlgorithm.FlagSupportsBatch


class InstallEngine(_EngineAlgorithm):
    NAME = "installengine"
    DISPLAY_NAME = "Install or update the engine"

    def shortHelpString(self):  # noqa: N802 (QGIS API): says what, how big and where, for this profile
        folder = managed_engine_folder()
        installed = installed_version(folder)
        state = f"An engine {installed} is installed there now; this replaces it." if installed else "No engine is installed there yet."
        return (
            "<p>Installs the engine that runs the plugin's steps: an isolated Python environment in the QGIS profile "
            f"with satplugin-engine {__version__} and its packages (rasterio, shapely, pyproj, pyogrio, pandas, "
            "numba, OpenCV, zarr, sentinelhub and ONNX Runtime: its CUDA build where there is an NVIDIA GPU, else the "
            "CPU build), all PyPI wheels: no administrator rights, no compiler, and QGIS's own Python is not "
            "changed.</p>"
            f"<p><b>Where</b>: {folder}. {state}</p>"
            "<p><b>Size</b>: about 250 MB downloaded from PyPI (550 MB with the CUDA build), about 900 MB on disk.</p>"
            "<p><b>WHEELHOUSE</b> (optional): a folder of wheels to install from instead of PyPI, for a machine "
            "without internet; make it elsewhere with <code>pip download -d wheels pip satplugin_engine-*.whl[all]</code> (the wheel is in the plugin folder's engine_wheel/) "
            "for the same Python version and platform.</p>"
            "<p>A failed or canceled install leaves the previous engine as it was. To use an environment of your "
            "own instead, set its Python in Options &gt; Processing &gt; Providers &gt; Sentinel-2 ML datasets.</p>"
            "<p><b>Example</b> (command line):<br/><code>qgis_process run satplugin:installengine -- WHEELHOUSE=/media/usb/wheels</code></p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(
            QgsProcessingParameterFile(
                "WHEELHOUSE", "Wheelhouse folder (offline install; empty: PyPI)", QgsProcessingParameterFile.Folder, optional=True
            )
        )
        self.addOutput(QgsProcessingOutputString("ENGINE_PYTHON", "The engine's Python"))
        self.addOutput(QgsProcessingOutputString("VERSION", "The engine's version"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        wheelhouse = self.parameterAsFile(parameters, "WHEELHOUSE", context) or None
        folder = managed_engine_folder()
        lines = ConsoleLines(feedback)
        with core_errors():
            plan = plan_install(folder, engine_source(PLUGIN_FOLDER, __version__), Path(wheelhouse) if wheelhouse else None)
            lines.info(plan.describe())
            # A wheelhouse install downloads nothing: no line about the proxy then.
            plan.environment = proxy_for_child(lines.info if plan.wheelhouse is None else (lambda line: None),
                                               "The downloads go")
            version = install_engine(
                plan, Feedback(progress=lambda f: lines.progress(100.0 * f), log=lines.info, is_canceled=feedback.isCanceled)
            )
        return {"ENGINE_PYTHON": str(venv_python(folder)), "VERSION": version}


class RemoveEngine(_EngineAlgorithm):
    NAME = "removeengine"
    DISPLAY_NAME = "Remove the engine"
    HELP = (
        "<p>Removes the managed engine (the environment Install engine made in the QGIS profile), and what an "
        "installation that did not finish left beside it, and frees their disk space. It is refused while a step "
        "runs in the engine. The plugin's steps then need an engine again. An environment of your own is never "
        "touched.</p>"
        "<p><b>Example</b> (command line):<br/><code>qgis_process run satplugin:removeengine</code></p>"
    )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addOutput(QgsProcessingOutputNumber("REMOVED", "1 if an engine was removed, 0 if there was none"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        folder = managed_engine_folder()
        try:
            removed = remove_engine(folder)
        except (SatPluginError, OSError) as exc:
            raise QgsProcessingException(f"The engine at {folder} could not be removed: {exc}") from exc
        if folder in removed:
            feedback.pushInfo(f"Removed the engine at {folder}.")
        else:
            feedback.pushInfo(f"There was no engine at {folder}.")
        for leftover in (path for path in removed if path != folder):
            feedback.pushInfo(f"Removed {leftover}, left by an installation that did not finish.")
        return {"REMOVED": int(folder in removed)}
