"""The methods: one module each, orchestration only. `run_method` dispatches on `method.name`."""

from __future__ import annotations

from pathlib import Path

from reftlab.config import RunConfig
from reftlab.errors import ReftlabError


def run_method(run: RunConfig, run_dir: Path) -> dict:
    """Run the method's stages and return its final metrics (at least `test_accuracy`)."""
    raise ReftlabError(
        f"method={run.method.name}: the training engine is not built yet; "
        "`dry_run=true` shows the plan this run would follow"
    )
