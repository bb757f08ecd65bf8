"""What ``genae`` prints: the run folder, a progress bar, a summary, and warnings that concern you.

By default a command is quiet: the libraries' notices (Lightning's banners and tips, W&B's own
terminal output, deprecation warnings raised inside torch, Lightning or wandb) are left out, and
genae's own warnings read ``genae: warning: ...``. A user error (one that genae raises on
purpose, with a message that says what to fix) prints that message without its traceback.
``--verbose`` on any command, or ``GENAE_VERBOSE=1``, prints everything, tracebacks included.
"""

import linecache
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import genae_lightning

VERBOSE_FLAG = "--verbose"
VERBOSE_VARIABLE = "GENAE_VERBOSE"
# The status a command exits with when it stopped on a user error.
USER_ERROR_EXIT_CODE = 1

PACKAGE_DIR = Path(genae_lightning.__file__).resolve().parent
# Loggers of the libraries whose INFO notices a quiet run leaves out (warnings still show).
QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_utilities")
# Modules whose deprecation notices concern their own maintainers, not a genae user.
LIBRARY_MODULES = r"(torch|lightning|lightning_fabric|pytorch_lightning|torchmetrics|torchvision" \
                  r"|wandb|jsonargparse|typing_extensions)(\..*)?"
# User errors are these types, raised by a ``raise`` statement in genae's own code.
USER_ERROR_TYPES = (ValueError, TypeError, OSError, LookupError, ImportError, FloatingPointError,
                    RuntimeError)


def split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--verbose`` from ``argv``; return the rest and whether output is verbose.

    ``GENAE_VERBOSE`` set to anything but ``""``/``0``/``false`` makes every command verbose.
    """
    verbose = os.environ.get(VERBOSE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")
    rest = [arg for arg in argv if arg != VERBOSE_FLAG]
    return rest, verbose or len(rest) < len(argv)


def _from_genae(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """``warnings.showwarning`` of a quiet run: genae's warnings as one ``genae: warning:`` line."""
    if not _from_genae(filename):
        _show_library_warning(message, category, filename, lineno, file, line)
        return
    stream = file or sys.stderr
    try:
        stream.write(f"genae: warning: {message}\n")
    except OSError:  # a closed stream: warnings must never crash the run
        pass


_show_library_warning = warnings.showwarning


@contextmanager
def console(verbose: bool) -> Iterator[None]:
    """Quiet the libraries' notices for a command unless ``verbose``; restore them afterwards."""
    if verbose:
        yield
        return
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    silent = os.environ.get("WANDB_SILENT")
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
        warnings.showwarning = _show_warning
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        if silent is None:
            os.environ["WANDB_SILENT"] = "true"  # genae's summary says where the W&B run is
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if silent is None:
                os.environ.pop("WANDB_SILENT", None)


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is one genae raised on purpose, with a message that says what to fix.

    That is: an error of a :data:`USER_ERROR_TYPES` type whose innermost frame is a ``raise``
    statement in genae's own code. Anything else (a bug, here or in a library) is not, and keeps
    its traceback.
    """
    if not isinstance(error, USER_ERROR_TYPES):
        return False
    tb: TracebackType | None = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    return _from_genae(filename) and \
        linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise")


@contextmanager
def reporting_errors(verbose: bool) -> Iterator[None]:
    """Turn a user error into its message on stderr and exit status 1 (unless ``verbose``)."""
    try:
        yield
    except Exception as error:
        if verbose or not is_user_error(error):
            raise
        print(f"genae: error: {type(error).__name__}: {error}\n"
              f"(for the traceback, run again with {VERBOSE_FLAG} or {VERBOSE_VARIABLE}=1)",
              file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT_CODE) from None


def say(message: str) -> None:
    """Print a line the user needs (the run folder, the summary), quiet or not."""
    print(message, flush=True)

