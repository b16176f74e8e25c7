"""The errors latentsight raises at its boundaries; each message names the problem and the fix."""

from __future__ import annotations


class LatentsightError(Exception):
    """Base of every error latentsight raises on purpose."""


class ProjectError(LatentsightError, ValueError):
    """The Project (model, data, loss, metadata, layers) does not meet the integration contract."""


class RunStoreError(LatentsightError):
    """A run directory is missing, incomplete, corrupt, or of an unsupported schema version."""


class NotRecordedError(LatentsightError, LookupError):
    """Something asked of a run (a layer, a view, a sample) that the run did not record."""


class CaptureError(LatentsightError, RuntimeError):
    """A sample failed during capture and the user asked to fail fast instead of quarantining it."""


class ExplanationError(LatentsightError, ValueError):
    """An explanation cannot be made as asked: no model attached, an unknown method, a bad layer."""


class OutputPathError(LatentsightError, OSError):
    """A file or folder cannot be written where asked: permission denied, a parent that is a
    file, a file system that takes no new files."""


class QueryError(LatentsightError, ValueError):
    """A query of a run (``run.sql``) is not one read-only SELECT, or DuckDB cannot run it."""


class ArgumentTypeError(LatentsightError, TypeError):
    """A public function was given an argument of the wrong type (a number for a layer name)."""


def argument_error(argument: str, wanted: str, value: object) -> ArgumentTypeError:
    """The error for an argument of the wrong type, raised at the boundary rather than deep
    inside: which argument, what it takes, and what it was given."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return ArgumentTypeError(f"{argument} takes {wanted}; got {type(value).__name__} {shown}.")
