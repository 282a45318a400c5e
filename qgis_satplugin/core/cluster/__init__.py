"""Running a step's tasks on Dask distributed: ``DASK_SCHEDULER``, the workers' check, the task loop.

A step that splits naturally (the export's chunks) makes plain-data tasks, and hands them
to :func:`.tasks.run_tasks`: in the engine process as before when the scheduler is empty,
on a ``LocalCluster`` of N worker processes started from the engine's own Python with
``local:N``, or on an existing cluster at ``tcp://host:port``. The engine is the client:
it checks that every worker runs the same engine and packages, sends each task its GDAL
settings, and merges the results in task-key order (never in completion order), so the
outputs do not depend on the number of workers.

dask and distributed are imported only when a scheduler is given.
"""
from ..lazy import lazy_exports

EXPORTS = {
    "Scheduler": "scheduler",
    "SCHEDULER_HELP": "scheduler",
    "parse_scheduler": "scheduler",
    "Task": "tasks",
    "TaskFailed": "tasks",
    "run_tasks": "tasks",
    "engine_identity": "identity",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
