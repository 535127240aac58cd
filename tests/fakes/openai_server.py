"""A local OpenAI-compatible chat completions server (real HTTP on 127.0.0.1, a free port) that
plays scripted replies: text, tool calls (good or malformed arguments), HTTP errors, hangs that
outlast the client's timeout, and slow streams. `enqueue()` scripts replies; `history` holds the
request bodies it received."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.served import ServedInThread


@dataclass
class Scripted:
    """One scripted answer to one chat completions request."""

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, raw arguments)
    status: int = 200
    error_body: dict[str, Any] | None = None
    delay: float = 0.0  # seconds before any byte is sent (a hang when above the client timeout)
    chunk_delay: float = 0.0  # seconds between stream chunks (slow streams)
    prompt_tokens: int = 50
    completion_tokens: int = 20


def text(content: str, **kw: Any) -> Scripted:
    """A plain assistant message."""
    return Scripted(text=content, **kw)


def tool_call(name: str, arguments: dict[str, Any] | str, **kw: Any) -> Scripted:
    """One tool call; a str `arguments` is sent verbatim (use it for malformed JSON)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return Scripted(tool_calls=[(name, raw)], **kw)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], **kw: Any) -> Scripted:
    """Several tool calls in one assistant message."""
    raws = [(n, a if isinstance(a, str) else json.dumps(a, ensure_ascii=False)) for n, a in calls]
    return Scripted(tool_calls=raws, **kw)


def http_error(status: int = 500, message: str = "scripted failure") -> Scripted:
    """An HTTP error with an OpenAI-style error body."""
    return Scripted(status=status, error_body={"error": {"message": message, "type": "server_error",
                                                          "code": status}})


def hang(seconds: float) -> Scripted:
    """Wait `seconds` before answering (longer than the client's timeout means a timeout)."""
    return Scripted(text="（迟到的回复）", delay=seconds)


def slow_stream(content: str, chunk_delay: float) -> Scripted:
    """A reply whose stream trickles one character every `chunk_delay` seconds."""
    return Scripted(text=content, chunk_delay=chunk_delay)


class FakeOpenAIServer(ServedInThread):
    """The scripted server; use as a context manager or call start()/stop()."""

    def __init__(self, model: str = "fake-model") -> None:
        self.model = model
        self.history: list[dict[str, Any]] = []
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control
    def enqueue(self, *replies: Scripted) -> None:
        """Script the next replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget scripted replies not yet played and the request history."""
        with self._lock:
            self._queue.clear()
            self.history.clear()

    @property
    def pending(self) -> int:
        """Scripted replies not yet played."""
        with self._lock:
            return len(self._queue)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # Clients that time out or drop a kept-alive connection are part of the script.
                error = sys.exc_info()[1]
                if not isinstance(error, (ConnectionResetError, BrokenPipeError, TimeoutError)):
                    super().handle_error(request, client_address)

        self._serve(Server(("127.0.0.1", 0), Handler))
        return self

    # ------------------------------------------------------------------ serving
    def _next(self) -> Scripted:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return http_error(500, "no scripted reply left")

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        if not req.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(req, 404, {"error": {"message": f"unknown path {req.path}"}})
            return
        with self._lock:
            self.history.append(body)
        script = self._next()
        try:
            if script.delay:
                time.sleep(script.delay)
            if script.status != 200:
                self._send_json(req, script.status, script.error_body or {})
            elif body.get("stream"):
                self._stream(req, body, script)
            else:
                self._send_json(req, 200, self._completion(script))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point of some scripts

    def _send_json(self, req: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _usage(self, script: Scripted) -> dict[str, int]:
        return {"prompt_tokens": script.prompt_tokens,
                "completion_tokens": script.completion_tokens,
                "total_tokens": script.prompt_tokens + script.completion_tokens}

    def _completion(self, script: Scripted) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": script.text or None}
        if script.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}_{uuid.uuid4().hex[:8]}", "type": "function",
                 "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(script.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": self.model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if script.tool_calls else "stop"}],
            "usage": self._usage(script),
        }

    def _stream(self, req: BaseHTTPRequestHandler, body: dict[str, Any], script: Scripted) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/event-stream")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            payload = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                       "model": self.model, "choices": choices, **extra}
            self._chunk(req, f"data: {json.dumps(payload, ensure_ascii=False)}\n\n")

        event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                "finish_reason": None}])
        pieces = list(script.text) if script.chunk_delay else [script.text] if script.text else []
        for piece in pieces:
            if script.chunk_delay:
                time.sleep(script.chunk_delay)
            event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        for i, (name, args) in enumerate(script.tool_calls):
            call_id = f"call_{i}_{uuid.uuid4().hex[:8]}"
            event([{"index": 0, "delta": {"tool_calls": [{
                "index": i, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}, "finish_reason": None}])
            half = len(args) // 2  # split arguments across chunks, as real servers do
            for part in (args[:half], args[half:]):
                event([{"index": 0, "delta": {"tool_calls": [{
                    "index": i, "function": {"arguments": part}}]}, "finish_reason": None}])
        event([{"index": 0, "delta": {},
                "finish_reason": "tool_calls" if script.tool_calls else "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=self._usage(script))
        self._chunk(req, "data: [DONE]\n\n")
        req.wfile.write(b"0\r\n\r\n")
        req.wfile.flush()

    @staticmethod
    def _chunk(req: BaseHTTPRequestHandler, text: str) -> None:
        data = text.encode()
        req.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        req.wfile.flush()
