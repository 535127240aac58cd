"""The fault drills in their short form (`pytest -m drill`, run by .ci/run): serve + two workers
on PostgreSQL + Redis against the fake WeChat API; nothing lost after ack, nothing duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.drill
@pytest.mark.timeout(600)
def test_short_drills_lose_and_duplicate_nothing(redis_url: str, pg_schema_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "drill.py"), "--short", "--json"],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=ROOT,
    )
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(figures) == 6, result.stdout + result.stderr[-3000:]
    for f in figures:
        assert f["lost"] == 0 and f["duplicated"] == 0, f
    by_name = {f["scenario"][0]: f for f in figures}
    assert by_name["d"]["refused"] == 1 and by_name["d"]["notes"]["poison_answered_4xx"]
    assert by_name["e"]["notes"]["slow_down_notices"] == 1
    assert by_name["c"]["notes"]["last_reply_after_return_s"] is not None
    assert by_name["c"]["notes"]["last_reply_after_return_s"] <= 60
    assert by_name["s"]["notes"]["still_held"] == 0
    assert result.returncode == 0
