"""Load Polis export folders (the openData layout) into a vote matrix for the consensus math.

A folder holds ``comments.csv`` and ``votes.csv`` (an event log: each voter's latest vote on a
comment counts), or ``participants-votes.csv`` (one row per participant, one column per comment,
plus Polis's own ``group-id``). Votes use +1 agree, -1 disagree, 0 pass. Comments moderated out
(``moderated = -1``) or marked ``is-meta`` are returned in ``mod_out``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yishi.core.errors import Invalid, NotFound
from yishi.deliberation.consensus import VoteMatrix

# Comment bodies can be long; the csv module's default field limit is 128 KiB.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass
class PolisExport:
    """One Polis conversation: its votes, moderated-out comments and Polis's own groups."""

    matrix: VoteMatrix
    mod_out: list[int] = field(default_factory=list)
    comment_text: dict[int, str] = field(default_factory=dict)
    polis_groups: dict[int, int] = field(default_factory=dict)  # participant -> Polis group-id


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _comments(folder: Path) -> tuple[list[int], dict[int, str]]:
    path = folder / "comments.csv"
    if not path.exists():
        return [], {}
    mod_out: list[int] = []
    text: dict[int, str] = {}
    for row in _read_rows(path):
        cid = int(row["comment-id"])
        text[cid] = row.get("comment-body", "")
        meta = row.get("is-meta", "").strip().lower() == "true"
        if row.get("moderated", "").strip() == "-1" or meta:
            mod_out.append(cid)
    return sorted(mod_out), text


def _polis_groups(folder: Path) -> dict[int, int]:
    path = folder / "participants-votes.csv"
    if not path.exists():
        return {}
    return {
        int(row["participant"]): int(row["group-id"])
        for row in _read_rows(path)
        if row.get("group-id", "").strip() != ""
    }


def _from_votes_csv(path: Path) -> VoteMatrix:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        rows = [
            (int(r[col["timestamp"]]), int(r[col["voter-id"]]), int(r[col["comment-id"]]),
             int(r[col["vote"]]))
            for r in reader
            if r
        ]
    if not rows:
        raise Invalid(f"{path} 中没有投票记录", hint="请确认导出文件完整")
    data = np.array(rows, dtype=np.int64)
    # Sort by time (stable), so the last row of each (voter, comment) pair is the latest vote.
    data = data[np.argsort(data[:, 0], kind="stable")]
    pids = np.unique(data[:, 1])
    # Like Polis, only comments that received a vote become columns.
    cids = np.unique(data[:, 2])
    r = np.searchsorted(pids, data[:, 1])
    c = np.searchsorted(cids, data[:, 2])
    values = np.full((len(pids), len(cids)), np.nan)
    values[r, c] = data[:, 3].astype(np.float64)  # later rows overwrite earlier ones
    return VoteMatrix(values=values, participants=pids.tolist(), comments=cids.tolist())


def _from_participants_votes(path: Path) -> VoteMatrix:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        fixed = {"participant", "xid", "group-id", "n-comments", "n-votes", "n-agree",
                 "n-disagree"}
        comment_cols = [i for i, name in enumerate(header) if name not in fixed]
        p_col = header.index("participant")
        participants: list[int] = []
        table: list[list[float]] = []
        for row in reader:
            if not row:
                continue
            participants.append(int(row[p_col]))
            table.append([
                float(row[i]) if i < len(row) and row[i].strip() != "" else np.nan
                for i in comment_cols
            ])
    comments = [int(header[i]) for i in comment_cols]
    values = np.array(table, dtype=np.float64).reshape(len(participants), len(comments))
    return VoteMatrix(values=values, participants=participants, comments=comments)


def load_export(folder: str | Path) -> PolisExport:
    """Read a Polis export folder: votes.csv when present, else participants-votes.csv."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"找不到 Polis 导出目录 {folder}", hint="请传入包含 votes.csv 的目录")
    mod_out, text = _comments(folder)
    if (folder / "votes.csv").exists():
        matrix = _from_votes_csv(folder / "votes.csv")
    elif (folder / "participants-votes.csv").exists():
        matrix = _from_participants_votes(folder / "participants-votes.csv")
    else:
        raise Invalid(
            f"{folder} 中既没有 votes.csv 也没有 participants-votes.csv",
            hint="请使用 Polis 的数据导出（comments.csv + votes.csv）",
        )
    known = set(matrix.comments)
    return PolisExport(
        matrix=matrix,
        mod_out=[c for c in mod_out if c in known],
        comment_text=text,
        polis_groups=_polis_groups(folder),
    )


@dataclass
class PolisMathFixture:
    """Polis's own math output (math-pca2.json), the votes it came from, and its groups."""

    math: dict[str, Any]
    matrix: VoteMatrix
    groups: dict[int, int]  # participant -> Polis's group id


def load_math_fixture(folder: str | Path) -> PolisMathFixture:
    """Read a folder with Polis's `math-pca2.json` and `votes.json` (for checking our math)."""
    folder = Path(folder)
    try:
        math = json.loads((folder / "math-pca2.json").read_text())
        raw = json.loads((folder / "votes.json").read_text())
    except FileNotFoundError as exc:
        raise NotFound(f"Polis 计算结果不完整：{exc.filename}") from exc
    pid = "pid" if "pid" in raw[0] else "participant_id"
    tid = "tid" if "tid" in raw[0] else "statement_id"
    tids = set(math["tids"])
    matrix = VoteMatrix.from_votes(
        ((v[pid], v[tid], v["vote"]) for v in raw if v[tid] in tids), comments=math["tids"]
    )
    base = dict(zip(math["base-clusters"]["id"], math["base-clusters"]["members"], strict=True))
    groups = {p: g["id"] for g in math["group-clusters"] for b in g["members"] for p in base[b]}
    return PolisMathFixture(math=math, matrix=matrix, groups=groups)
