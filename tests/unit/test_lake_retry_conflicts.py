"""The lake's commit retry: conflicts are retried through shoal.retry, nothing else is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shoal.errors import StorageUnavailable
from shoal.lake import CommitConflict
from shoal.lake.table import retry_conflicts


def failing(errors: list[Exception]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "committed"

    return calls, fn


def test_conflicts_are_retried_until_the_commit_lands() -> None:
    calls, fn = failing([CommitConflict("lost a race"), CommitConflict("lost again")])
    assert retry_conflicts(fn, "append to ns.t") == "committed"
    assert len(calls) == 3


def test_no_retries_means_the_conflict_goes_to_the_caller() -> None:
    calls, fn = failing([CommitConflict("lost a race")])
    with pytest.raises(CommitConflict):
        retry_conflicts(fn, "append to ns.t", retries=0)
    assert len(calls) == 1


def test_other_transient_errors_are_not_retried_here() -> None:
    unreachable = StorageUnavailable("s3 down")
    calls, fn = failing([unreachable])
    with pytest.raises(StorageUnavailable) as caught:
        retry_conflicts(fn, "append to ns.t")
    assert caught.value is unreachable
    assert len(calls) == 1
