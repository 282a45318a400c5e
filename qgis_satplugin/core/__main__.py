"""The engine's command line: run one step from its job spec, streaming feedback as JSON lines.

    python -m satplugin_engine run ground_truth job.json
    python -m satplugin_engine version
    python -m satplugin_engine warm-up

``job.json`` is the step's options (``<Name>Options.to_json()``). Every line on stdout is
one JSON object: ``{"progress": 0.25}`` and ``{"log": "..."}`` while it runs (see
:class:`.feedback.JsonLinesFeedback`), then ``{"result": {...}}`` (exit 0) or
``{"error": "one sentence"}`` (exit 1; a cancel exits 3). SIGTERM or SIGINT cancels the
run at its next check, which leaves no output half-written. Credentials are never in a
job file: the Sentinel Hub steps read ``SH_CLIENT_ID`` and ``SH_CLIENT_SECRET`` from the
environment.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback

from . import __version__
from .errors import Canceled, SatPluginError
from .feedback import JsonLinesFeedback
from .steps import STEPS, step, warm_up_all

EXIT_ERROR = 1
EXIT_CANCELED = 3  # argparse exits 2 on a bad command line


def main(argv=None, stdout=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m satplugin_engine", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run one step from its job spec")
    run_parser.add_argument("step", choices=sorted(STEPS))
    run_parser.add_argument("job", help="the step's options as JSON (a file, or - for stdin)")
    run_parser.add_argument("--workdir", help="the folder that relative paths in the job are relative to "
                                              "(the caller's; default: the current folder)")
    commands.add_parser("version", help="print the engine's version and Python as one JSON line")
    commands.add_parser("warm-up", help="compile the steps' kernels into numba's cache (a tiny run of each)")
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    if args.command == "version":
        # What the plugin checks before a run (the engine must match its version); quick:
        # it imports none of the steps' packages.
        out.write(json.dumps({"version": __version__, "python": sys.version.split()[0], "executable": sys.executable}) + "\n")
        out.flush()
        return 0

    if args.command == "warm-up":
        out.write(json.dumps({"warmed_up": warm_up_all()}) + "\n")
        out.flush()
        return 0

    canceled = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals can be handled there only
        # SIGBREAK: what the plugin's CTRL_BREAK_EVENT is on Windows.
        for signum in (signal.SIGTERM, signal.SIGINT, *([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])):
            previous[signum] = signal.signal(signum, lambda *_: canceled.set())
    feedback = JsonLinesFeedback(out, is_canceled=canceled.is_set)

    def answer(event: dict, code: int) -> int:
        out.write(json.dumps(event) + "\n")
        out.flush()
        return code

    try:
        options_class, run = step(args.step)
        text = sys.stdin.read() if args.job == "-" else _read(args.job)
        if args.workdir:
            # The caller starts the engine elsewhere, so that its own folder is not on sys.path.
            os.chdir(args.workdir)
        result = run(options_class.from_json(text), feedback)
        return answer({"result": result.to_dict()}, 0)
    except Canceled as exc:
        return answer({"error": str(exc)}, EXIT_CANCELED)
    except SatPluginError as exc:
        return answer({"error": str(exc)}, EXIT_ERROR)
    except Exception as exc:  # a defect: still one line the parent can show, the traceback on stderr
        traceback.print_exc()
        return answer({"error": f"The engine failed unexpectedly ({type(exc).__name__}: {exc}); "
                                "the traceback is in its error output (the plugin shows its end in the log).",
                       "defect": True}, EXIT_ERROR)
    finally:
        for signum, handler in previous.items():
            # None: a handler installed from C (an embedding host); the default is the safe return.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise SatPluginError(f"The job file {path} cannot be read ({exc.strerror or exc}).") from None


if __name__ == "__main__":
    sys.exit(main())
