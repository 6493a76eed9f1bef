"""What every command line of the chapter shares: the model options, and turning errors into exit codes.

Library code raises; only the entry points built with ``run_cli`` print ``error: ...`` and exit 2, and
only for failures a user can cause and fix: ``errors.ChapterError`` (whose message says what to do)
and the file-system errors a wrong path gives. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from . import config
from .errors import ChapterError

FILE_SYSTEM_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
EXPECTED_ERRORS = (ChapterError, *FILE_SYSTEM_ERRORS)  # printed as one line, exit code 2


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--models/--device/--dtype, shared by every entry point of the chapter."""
    parser.add_argument("--models", choices=config.MODEL_MODES, default=None,
                        help="auto: real weights if available, else the toy twins (default; or $CH09_MODELS)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    parser.add_argument("--dtype", default=None, choices=("float32", "fp32", "bfloat16", "bf16", "float16", "fp16"),
                        help="default: best for the device (bf16 on CPUs with native bf16, fp16 on CUDA)")


def add_lang_option(parser: argparse.ArgumentParser) -> None:
    """--lang en|zh: the language a lesson narrates in (default: $CH09_LANG, else English; resolved by
    ``exercises.i18n.resolve``, the chapter's one reading of the language)."""
    parser.add_argument("--lang", default=None, choices=("en", "zh"),
                        help="narration, labels and figures in English or Chinese (default: $CH09_LANG, else en)")


def run_cli(main: Callable[[], int], expected: tuple = EXPECTED_ERRORS) -> int:
    """Run an entry point: its return value is the exit code; ``expected`` errors print one line and give 2,
    any other error propagates with its traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except expected as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


def stop_process(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """Stop a child server (a benchmark's ``serve``): ask politely, then kill it if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
