"""What every satplugin algorithm shares: groups, icon, help, and the bridge to the core.

The bridge turns ``QgsProcessingFeedback`` into the core's progress, cancel and log
callbacks, and core errors into ``QgsProcessingException`` with the same message.
"""
import html
import json
import re
import signal
import threading
from contextlib import contextmanager, nullcontext

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProviderRegistry,
)
from qgis.PyQt.QtGui import QIcon

from ..qgis_satplugin.core import __version__, steps
from ..qgis_satplugin.core.atomic import check_output_paths
from ..qgis_satplugin.core.dependencies import require
from ..qgis_satplugin.core.errors import Canceled, SatPluginError
from ..qgis_satplugin.core.feedback import Feedback
from ..qgis_satplugin.core.resources import resource_path
from ..qgis_satplugin.engine_env.child import run_in_engine
from ..qgis_satplugin.engine_env.install import running_in
from ..qgis_satplugin.engine_env.locate import Engine, EngineMissing, find_engine
from .network_proxy import proxy_for_child
from .number_values import number_problem
from .raster_sidecars import no_new_sidecars

# The Processing setting that names the engine's Python (Options > Processing > Providers).
ENGINE_PYTHON_SETTING = "SATPLUGIN_ENGINE_PYTHON"

ICON = resource_path("icon.svg")

# One group per step of the workflow, numbered so the toolbox lists them in order.
GROUPS = {
    "engine": "0 · Engine",
    "search": "1 · Search",
    "download": "2 · Download",
    "groundtruth": "3 · Ground truth",
    "export": "4 · Export",
    "superresolution": "5 · Super-resolution",
}


class SatPluginAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set NAME, DISPLAY_NAME, GROUP and HELP."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    HELP = ""

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802 (QGIS API)
        return self.DISPLAY_NAME

    def group(self):
        return GROUPS[self.GROUP]

    def groupId(self):  # noqa: N802 (QGIS API)
        return self.GROUP

    def shortHelpString(self):  # noqa: N802 (QGIS API)
        return help_html(self.HELP)

    def icon(self):
        return QIcon(str(ICON))

    def createInstance(self):  # noqa: N802 (QGIS API)
        return type(self)()

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API)
        for definition in self.parameterDefinitions():
            problem = number_problem(definition, parameters.get(definition.name()))
            if problem:  # said with the allowed range (QGIS: "Incorrect parameter value for X")
                return False, problem
        # QGIS opens the input rasters here, before the run (see .raster_sidecars).
        rasters = [parameters.get(d.name()) for d in self.parameterDefinitions() if d.type() in ("raster", "multilayer")]
        with no_new_sidecars(rasters):
            return super().checkParameterValues(parameters, context)

    def canExecute(self):  # noqa: N802 (QGIS API): checked before a run, and the dialog says why not
        try:
            current_engine()
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def run_step(self, step: str, options, feedback, *, credentials=None) -> dict:
        """Run a step (``core.steps`` name) on ``options`` in the engine; its result as JSON values.

        The engine is a child process of the engine's Python (see ``engine_env.locate``), or
        this process when QGIS's own Python has the engine's packages. ``credentials`` (from
        QGIS's authentication database) reach a child through its environment only
        (SH_CLIENT_ID, SH_CLIENT_SECRET), never a file or a command line; so does QGIS's
        HTTP proxy (``network_proxy``).
        """
        engine = current_engine()
        lines = ConsoleLines(feedback)
        core_feedback = Feedback(
            progress=lambda fraction: lines.progress(100.0 * fraction),
            log=lines.info,
            is_canceled=feedback.isCanceled,
        )
        with core_errors(), terminate_cancels(feedback):
            if engine.in_process:
                run = steps.step(step)[1]
                live = {"credentials": credentials} if credentials is not None else {}
                # Through JSON, so a result reads the same from this process as from a child.
                return json.loads(json.dumps(run(options, core_feedback, **live).to_dict()))
            lines.info(f"Running in the engine: {engine.python} ({engine.origin})")
            environment = proxy_for_child(lines.info, "The engine goes")
            if credentials:
                environment.update(SH_CLIENT_ID=credentials.client_id, SH_CLIENT_SECRET=credentials.client_secret)
            with running_in(engine.managed_folder) if engine.managed_folder else nullcontext() as in_use:
                return run_in_engine(engine.python, step, options.to_json(), core_feedback, extra_env=environment,
                                     held=(in_use,) if in_use else ())


def current_engine() -> Engine:
    """The engine the steps run in now, or a ``QgsProcessingException`` that says how to get one."""
    try:
        return find_engine(__version__, setting=engine_setting(), profile_folder=QgsApplication.qgisSettingsDirPath())
    except EngineMissing as exc:
        raise QgsProcessingException(str(exc)) from None


def engine_setting() -> str:
    """The Processing setting ENGINE_PYTHON ('' when unset, or where Processing's settings are not loaded)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return ""
    return str(ProcessingConfig.getSetting(ENGINE_PYTHON_SETTING) or "")


def options_help(options_class, parameter_of: dict, notes: dict | None = None, last=()) -> str:
    """One paragraph per parameter, from the options' own descriptions (written once, in the core).

    ``parameter_of`` maps an option to the parameter that sets it (options without one are
    left out); ``notes`` adds what the parameter means in QGIS; options in ``last`` come last,
    as they stand in the dialog.
    """
    notes = notes or {}
    lines = [(name, text) for name, text in options_class.help_lines() if name in parameter_of]
    lines.sort(key=lambda line: line[0] in last)
    paragraphs = []
    for name, text in lines:
        text = text[:1].upper() + text[1:] + notes.get(name, "")
        if not text.endswith("."):
            text += "."
        paragraphs.append(f"<p><b>{parameter_of[name]}</b>: {html.escape(text, quote=False)}</p>")
    return "\n".join(paragraphs)


@contextmanager
def core_errors():
    """A core error (a bad value, a cancel) as the ``QgsProcessingException`` QGIS shows, same sentence."""
    try:
        yield
    except (Canceled, SatPluginError) as exc:
        raise QgsProcessingException(str(exc)) from exc


def help_html(text: str) -> str:
    """Help HTML with the source's line wrapping undone.

    QGIS's help panel turns every newline into a paragraph break, so a sentence wrapped
    in the source would be cut into fragments. The HELP strings stay wrapped for reading
    in the code; paragraphs and line breaks are the HTML's own ``<p>`` and ``<br/>``.
    """
    return re.sub(r"[ \t]*\n\s*", " ", text).strip()


class ConsoleLines:
    """Progress and log lines for a feedback; under qgis_process each line starts on a new line.

    qgis_process draws progress as dots ("0...10...20") without a line break, so a log
    line sent mid-way would run into them; there a line after progress starts with one.
    """

    def __init__(self, feedback):
        from qgis.core import QgsApplication

        self.feedback = feedback
        self.console = QgsApplication.platform() == "qgis_process"
        self.dots_open = False

    def progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)
        self.dots_open = self.console and percent < 100.0

    def info(self, text: str) -> None:
        if self.dots_open:
            text, self.dots_open = "\n" + text, False
        self.feedback.pushInfo(text)


@contextmanager
def terminate_cancels(feedback):
    """While the block runs, SIGTERM cancels the run the way the Cancel button does.

    ``qgis_process`` runs an algorithm on its main thread, where Python's signal handlers
    run: a ``kill`` (or a batch system's time limit) then leaves what a cancel leaves,
    temp files removed and previous outputs untouched, and the process exits non-zero.
    A second SIGTERM kills at once. In QGIS Desktop algorithms run on worker threads,
    where signals cannot be handled; there the task's Cancel is the way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        feedback.reportError("Terminated (SIGTERM): canceling and cleaning up.", False)
        feedback.cancel()

    try:
        previous = signal.signal(signal.SIGTERM, on_terminate)
    except (ValueError, OSError):  # not allowed here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def crs_string(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS for pyproj: the authority id when there is one, else WKT2."""
    if not crs.isValid():
        raise QgsProcessingException("The layer has no valid CRS; set one in its properties.")
    authid = crs.authid()
    if authid and not authid.upper().startswith("USER:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def layer_file(layer):
    """The file a layer reads (a GeoPackage, a GeoTIFF), or None for memory and web layers."""
    if layer is None:
        return None
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") if isinstance(parts, dict) else None
    return path or None


def check_outputs_against_inputs(outputs: dict, inputs: dict) -> None:
    """Refuse, before any work, outputs that would overwrite an input or each other."""
    with core_errors():
        check_output_paths(outputs, inputs)


def require_packages(needed_by: str, *modules: str, alternative: str = "") -> None:
    """:func:`core.dependencies.require` for an algorithm, before it reads its inputs.

    Only for steps run in this process: an engine process checks its own packages.
    """
    if current_engine().in_process:
        with core_errors():
            require(needed_by, *modules, alternative=alternative)
