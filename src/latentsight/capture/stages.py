"""Which part of the user's project raised while capture computed a batch: the stage names it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from latentsight.errors import ProjectError


class StageFailure(Exception):
    """The user's code raised in one stage (``collate``, ``padding mask``, ``forward``, ``loss``,
    ``metric 'x'``, ``metadata``, ``render``); the message is ``"<stage>: <error>"``, as
    quarantine records it."""

    def __init__(self, stage: str, error: Exception) -> None:
        super().__init__(f"{stage}: {error!r}")
        self.stage = stage
        self.error = error


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Tag an error raised in the block with the stage; a ProjectError (the contract is broken,
    not one sample) goes through as it is."""
    try:
        yield
    except ProjectError:
        raise
    except Exception as error:
        raise StageFailure(name, error) from error
