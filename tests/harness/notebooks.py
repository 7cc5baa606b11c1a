"""Run a Jupyter notebook headless (nbconvert) and return its code cells' outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def execute_notebook(notebook: Path, out: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Execute ``notebook`` into ``out`` with ``env`` added to the environment; assert it ran without
    an error output and return every code cell's outputs, in order."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(notebook),
            "--output", str(out), "--ExecutePreprocessor.timeout=300",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    outputs: list[dict[str, Any]] = [
        o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs
