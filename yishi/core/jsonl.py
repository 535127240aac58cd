"""JSON Lines input for the batch commands (`yishi search --batch`, `yishi screen --batch`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from yishi.core.errors import Invalid, NotFound


def read_objects(path: Path, *, skipped: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, in order; blank lines are ignored and the numbers of
    lines that are not JSON objects are appended to `skipped` instead of stopping the batch."""
    if not path.is_file():
        raise NotFound(f"找不到文件：{path}", hint="请检查路径；文件每行是一个 JSON 对象")
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise Invalid(f"无法读取文件：{path}（{exc.strerror}）") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                if skipped is not None:
                    skipped.append(n)
                continue
            yield row
