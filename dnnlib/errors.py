"""User errors and the one way every command reports them: one `Error: ...` line on stderr, exit status 1.

A user error is a problem the user can fix (a bad file, option, config value or checkpoint, a missing weight file,
a full disk); anything else is a bug and keeps its traceback. `STYLEINV_DEBUG=1` shows the traceback of every
error. What counts as a user error (`user_message`):
- `UserError` and its subclasses (e.g. `training.dataset.DatasetError`), and click's own errors;
- ValueError, KeyError and FileNotFoundError raised by a `raise` statement in this project's code: the project
  raises these only with a message for the user (checked options, files, checkpoints, configs). The same types
  raised inside a library (numpy, torch, the standard library) or implicitly (`d[key]`, `int(text)`) mean that our
  code did something wrong: a bug;
- an OSError from the system naming a file (missing, permission denied, ...) or a full, read-only or size-limited
  disk.
Warnings of category `UserNotice` (skipped videos, skipped snapshots) print as one `Warning: ...` line.
"""

import contextlib
import errno
import functools
import linecache
import os
import warnings
from pathlib import Path

import click

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
_RAISED_TYPES = (ValueError, KeyError, FileNotFoundError)


# A mistake the user can fix; the message names the file or option and says what to do.
class UserError(Exception):
    pass


# A warning for the user about their files (shown by the CLIs as one "Warning: ..." line).
class UserNotice(UserWarning):
    pass


def debug() -> bool:
    return os.environ.get("STYLEINV_DEBUG", "") not in ("", "0")


# True if `exc` was raised by a `raise` statement in this project's own files (not a library's, not implicitly).
def raised_by_project(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    if not path.is_relative_to(PROJECT_ROOT) or "site-packages" in path.parts:
        return False
    return linecache.getline(str(path), tb.tb_lineno).lstrip().startswith("raise ")


# The message of an exception; for one re-raised by a DataLoader worker ("Caught X in DataLoader worker process 0.
# Original Traceback ..."), the original message without the worker's traceback.
def _text(exc: BaseException) -> str:
    text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    marker = f"{type(exc).__name__}: "
    if text.startswith("Caught ") and "Original Traceback" in text and marker in text:
        text = text[text.rindex(marker) + len(marker):]
    return text.strip()


# The one-line message to show for a user error, or None if `exc` is a bug (see the module docstring).
def user_message(exc: BaseException) -> str | None:
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, UserError):
        return _text(exc)
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        if exc.filename is not None:
            return f"{exc.strerror}: '{exc.filename}'"
        if exc.errno in _ENVIRONMENT_ERRNOS:
            return exc.strerror
    if isinstance(exc, _RAISED_TYPES) and raised_by_project(exc):
        return _text(exc)
    return None


# Context in which UserNotice warnings print as "Warning: <message>" (other warnings as before). It replaces the
# formatter only, so recording warnings (pytest.warns, catch_warnings(record=True)) still works inside.
@contextlib.contextmanager
def user_warnings():
    previous = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None):
        if issubclass(category, UserNotice):
            return f"Warning: {message}\n"
        return previous(message, category, filename, lineno, line)
    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


# Decorator for a CLI command: a user error becomes click's "Error: <message>" (exit status 1) instead of a
# traceback; bugs, and every error with STYLEINV_DEBUG=1, keep their traceback. An exception marked
# `reported_elsewhere` (another process printed it) exits with status 1 silently.
def clean_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with user_warnings():
            try:
                return fn(*args, **kwargs)
            except click.ClickException:
                raise
            except Exception as e:
                if debug():
                    raise
                if getattr(e, "reported_elsewhere", False):
                    raise click.exceptions.Exit(1) from None
                message = user_message(e)
                if message is None:
                    raise
                raise click.ClickException(message) from None
    return wrapper
