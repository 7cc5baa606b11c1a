"""The lake root's write check holds when several processes start at once (``shoal up``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shoal.lake.storage import LakeLocation


def test_concurrent_write_checks_do_not_take_each_others_probe(tmp_path: Path) -> None:
    # every worker of `shoal up` checks the root as it starts: with one shared probe name, one
    # check's unlink removed another's probe and that worker died "not writable" (a CI failure)
    location = LakeLocation.parse(str(tmp_path / "lake"))
    with ThreadPoolExecutor(8) as pool:
        for result in [pool.submit(location.check_writable) for _ in range(400)]:
            result.result()
    assert list((tmp_path / "lake").iterdir()) == []  # no probe left behind
