"""Logs without personal data: every log record is rewritten before any handler sees it.

Message texts are never passed to the logger in the first place; this is the safety net for
what does get there: channel identities (`wechat_mp:<OpenID>`, `wecom:<UserID>`, `web:<id>`)
and bare OpenIDs are replaced by a short hash, and the query string of a webhook URL (signature,
timestamp, nonce, openid, access_token) is dropped, so uvicorn's access log keeps only the path.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

_CHANNEL_ID = re.compile(r"\b(wechat_mp|wecom|web|cli):([A-Za-z0-9_\-@.]{1,128})")
_OPENID = re.compile(r"(?<![A-Za-z0-9_\-])o[A-Za-z0-9_\-]{27}(?![A-Za-z0-9_\-])")
_SECRET_QUERY = re.compile(
    r"([?&](?:signature|msg_signature|timestamp|nonce|openid|echostr|access_token|"
    r"encrypt_type|key|secret|corpsecret)=)[^&\s\"']*",
    re.IGNORECASE,
)

_installed = False
_previous_factory: Any = None


def short_id(value: str) -> str:
    """A short, stable, non-reversible stand-in for an identity in logs (8 hex characters)."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def redact(text: str) -> str:
    """`text` with identities hashed and webhook query secrets removed."""
    if not text:
        return text
    text = _SECRET_QUERY.sub(r"\1***", text)
    text = _CHANNEL_ID.sub(lambda m: f"{m.group(1)}:#{short_id(m.group(0))}", text)
    return _OPENID.sub(lambda m: f"o#{short_id(m.group(0))}", text)


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous_factory(*args, **kwargs)
    # Arguments are rewritten one by one and kept as arguments: formatters and filters that
    # read them (uvicorn's access formatter, the senders' secret filter) keep working.
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed, _previous_factory
    if _installed:
        return
    _previous_factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_redacting_factory)
    _installed = True
