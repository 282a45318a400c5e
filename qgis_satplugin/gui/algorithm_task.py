"""Run one Processing algorithm in a background task: the only way the dock does work.

Every step of the dock goes through :class:`AlgorithmRunner`, so what the dock does is
exactly what the toolbox, the modeler and qgis_process do with the same parameters.
The algorithm runs in a ``QgsProcessingAlgRunnerTask`` on QGIS's task manager, so the
window stays responsive; progress and the end of the run come back as Qt signals on
the main thread.
"""
import ast
from dataclasses import dataclass, field

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProject,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject, pyqtSignal


class ErrorCollectingFeedback(QgsProcessingFeedback):
    """Feedback that keeps the errors an algorithm reports, for the message bar."""

    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 (QGIS API)
        self.errors.append(error)
        super().reportError(error, fatalError)


def project_context() -> QgsProcessingContext:
    """A context on the open project: layer ids in the parameters resolve there, as in the toolbox."""
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return context


def python_command(algorithm_id, parameters) -> str:
    """The ``processing.run(...)`` line that repeats a run from the Python console.

    Written as QGIS's own Processing history writes it (``QgsProcessingAlgorithm.asPythonCommand``,
    rebuilt here to mend one of its values): each value as its parameter writes it in Python,
    layers as their sources rather than their ids (a source still opens after the project is
    closed), a feature source definition as its constructor call.
    """
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    if algorithm is None:  # the run itself reports this; the log line cannot be written without it
        return f"# {algorithm_id} is not registered: no Python command to log."
    context = project_context()
    values = []
    for definition in algorithm.parameterDefinitions():
        name = definition.name()
        if definition.flags() & QgsProcessingParameterDefinition.FlagHidden or name not in parameters:
            continue  # as asPythonCommand does
        value = parameters[name]
        text = definition.valueAsPythonString(value, context)
        if isinstance(value, str) and not _is_string_literal(text):
            # QGIS 3.22 writes some text values bare: a date parameter's "2023-04-01" comes
            # out as 2023-04-01, which is no Python (and 2023-10-15 would be arithmetic).
            # The text the step ran with is the value to replay.
            text = repr(value)
        values.append(f"{name!r}:{text}")
    return f"processing.run({algorithm.id()!r}, {{{','.join(values)}}})"


def _is_string_literal(text) -> bool:
    try:
        return isinstance(ast.literal_eval(text), str)
    except (ValueError, SyntaxError):
        return False


@dataclass
class RunOutcome:
    """How a run ended: ``status`` is "success", "canceled" or "failed"."""

    algorithm_id: str
    status: str
    results: dict = field(default_factory=dict)
    error: str = ""
    log: str = ""
    summary: str = ""  # what ``on_success`` said it did, for the message bar


@dataclass
class _Run:
    # The task takes the context and feedback by reference: Python must keep them alive
    # for as long as the task may use them, so they live here until the next run.
    algorithm_id: str
    task: QgsProcessingAlgRunnerTask
    context: QgsProcessingContext
    feedback: ErrorCollectingFeedback
    on_success: object
    user_canceled: bool = False
    done: bool = False


class AlgorithmRunner(QObject):
    """Runs one algorithm at a time; ``finished`` carries a :class:`RunOutcome`."""

    started = pyqtSignal(str)  # the algorithm's display name
    progressChanged = pyqtSignal(float)  # noqa: N815 (Qt naming)
    finished = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._run = None

    def is_running(self) -> bool:
        return self._run is not None and not self._run.done

    def run(self, algorithm_id, parameters, on_success=None):
        """Start ``algorithm_id``; ``on_success(results)`` runs on the main thread when it succeeds
        and returns a summary line.

        Parameters QGIS refuses (a missing required value, a wrong type) end the run at
        once as "failed", with QGIS's own message, before any task starts.
        """
        if self.is_running():
            raise RuntimeError("A step is still running; wait for it or cancel it first.")
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if algorithm is None:
            self._finish_now(algorithm_id, f"The algorithm {algorithm_id} is not registered (is the plugin enabled?).")
            return
        context = project_context()
        ok, message = algorithm.checkParameterValues(parameters, context)
        if not ok:
            self._finish_now(algorithm_id, message)
            return
        feedback = ErrorCollectingFeedback()
        task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
        if task.isCanceled():  # the algorithm's own prepare() refused the parameters
            self._finish_now(algorithm_id, feedback.errors[-1] if feedback.errors else "The algorithm refused its parameters.")
            return
        run = _Run(algorithm_id, task, context, feedback, on_success)
        task.executed.connect(lambda ok, results: self._executed(run, ok, results))
        # A task canceled before it started may end without `executed`: catch that too.
        task.taskTerminated.connect(lambda: self._executed(run, False, {}))
        task.progressChanged.connect(self.progressChanged)
        self._run = run
        self.started.emit(algorithm.displayName())
        QgsApplication.taskManager().addTask(task)

    def cancel(self):
        """Ask the running algorithm to stop; it checks ``feedback.isCanceled()`` often."""
        run = self._run
        if run is None or run.done:
            return
        run.user_canceled = True
        run.feedback.cancel()
        run.task.cancel()

    def _executed(self, run, ok, results):
        if run.done or sip.isdeleted(self):
            return  # already handled, or the dock was closed (plugin unloaded) meanwhile
        run.done = True
        log = run.feedback.textLog()
        # Canceled from the dock, or from QGIS's own task list in the status bar.
        if run.user_canceled or run.feedback.isCanceled():
            outcome = RunOutcome(run.algorithm_id, "canceled", log=log)
        elif ok:
            outcome = RunOutcome(run.algorithm_id, "success", dict(results or {}), log=log)
            if run.on_success is not None:
                try:
                    outcome.summary = run.on_success(outcome.results) or ""
                except Exception as exc:  # noqa: BLE001 (shown to the user, not swallowed)
                    outcome = RunOutcome(run.algorithm_id, "failed", outcome.results,
                                         f"The step ran, but its results could not be shown: {exc}", log)
        else:
            error = run.feedback.errors[-1] if run.feedback.errors else "The algorithm failed; see the log for details."
            outcome = RunOutcome(run.algorithm_id, "failed", error=error, log=log)
        self.finished.emit(outcome)

    def _finish_now(self, algorithm_id, error):
        self.finished.emit(RunOutcome(algorithm_id, "failed", error=error))
