"""Sentence vectors for moderation: what text is embedded, and an on-disk cache for training.

At run time a message is embedded through `yishi.core.embedding.embed_message` (memoised, so the
conversation engine reuses the vector). Training and evaluation embed thousands of texts; the
cache keeps each vector under `var/` keyed by a hash of the model id and the text, so retraining
only embeds what is new.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from yishi.core import embedding
from yishi.moderation.normalise import sanitise

MAX_EMBED_CHARS = 512  # the model reads ~512 tokens; longer texts are embedded by their head
CHUNK = 128  # vectors written per cache shard, so an interrupted run keeps its work


def embed_input(text: str) -> str:
    """The exact text the semantic stage embeds for a message."""
    return sanitise(text)[:MAX_EMBED_CHARS]


def text_key(text: str) -> str:
    """Cache key of one embedded text (model id + text)."""
    return hashlib.sha1(f"{embedding.MODEL_ID}\x00{text}".encode()).hexdigest()


class VectorCache:
    """Vectors keyed by text hash, stored as `.npz` shards in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._vecs: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob("*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    for k, v in zip(data["keys"].tolist(), data["vecs"], strict=True):
                        self._vecs[k] = v
            except (OSError, ValueError, KeyError):
                continue  # a shard cut short by a killed run: its texts are embedded again

    def __len__(self) -> int:
        return len(self._vecs)

    def get_many(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Vectors for `texts` (already in embed_input form), embedding the missing ones."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._vecs and k not in missing:
                missing[k] = t
        # Similar lengths batch together, so short messages are not padded to long ones.
        todo = sorted(missing.items(), key=lambda kv: len(kv[1]))
        done = 0
        for start in range(0, len(todo), CHUNK):
            part = todo[start : start + CHUNK]
            vecs = embedding.embed_messages([t for _, t in part])
            with self._lock:
                for (k, _), v in zip(part, vecs, strict=True):
                    self._vecs[k] = v
                self._write([k for k, _ in part], vecs)
            done += len(part)
            if progress is not None:
                progress(done, len(todo))
        return np.stack([self._vecs[k] for k in keys]) if keys else np.zeros((0, embedding.DIM))

    def _write(self, keys: list[str], vecs: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1("".join(keys).encode()).hexdigest()[:16]
        tmp = self.directory / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.array(keys), vecs=vecs.astype(np.float32))
        tmp.replace(self.directory / f"{name}.npz")
