"""A local WeChat API server (real HTTP on 127.0.0.1, free port) and a WeChat callback simulator.

`FakeWeChatServer` speaks the endpoints Yishi calls: Official Account `/cgi-bin/token` and
`/cgi-bin/message/custom/send`, WeCom `/cgi-bin/gettoken` and `/cgi-bin/message/send`, the
group robot `/cgi-bin/webhook/send?key=...`, the AI bot's `/cgi-bin/aibot/response` (each
`response_code` works once) and the media download `/cgi-bin/media/get` (images put with
`put_media`). It records token fetches and sends, issues a new token per fetch (the previous
one stays valid, as WeChat's 5-minute overlap), enforces the robot's 20 messages a minute,
and can be scripted to answer errcodes (40001, 42001, 45015, 45047, 45009, -1) or HTTP 5xx.

`CallbackSigner` builds what WeChat POSTs to our webhooks: signed plaintext or encrypted XML.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.served import ServedInThread
from yishi.bot.channels.crypto import MessageCrypto, sha1_signature

# Endpoint names used for scripting and records.
TOKEN = "token"
CUSTOM_SEND = "custom_send"
WECOM_TOKEN = "wecom_token"
WECOM_SEND = "wecom_send"
ROBOT = "robot"
MSG_RECORD = "msg_record"
AIBOT_RESPONSE = "aibot_response"
MEDIA_GET = "media_get"

_PATHS = {
    "/cgi-bin/token": TOKEN,
    "/cgi-bin/message/custom/send": CUSTOM_SEND,
    "/cgi-bin/gettoken": WECOM_TOKEN,
    "/cgi-bin/message/send": WECOM_SEND,
    "/cgi-bin/webhook/send": ROBOT,
    "/customservice/msgrecord/getmsglist": MSG_RECORD,
    "/cgi-bin/aibot/response": AIBOT_RESPONSE,
    "/cgi-bin/media/get": MEDIA_GET,
}


@dataclass
class Recorded:
    endpoint: str
    query: dict[str, str]
    body: dict[str, Any] | None
    at: float = field(default_factory=time.time)


@dataclass
class FakeWeChatServer(ServedInThread):
    """Scriptable WeChat API; use as a context manager (`with FakeWeChatServer() as wx:`)."""

    app_id: str = "wxfakeappid"
    app_secret: str = "fake-app-secret"
    corp_id: str = "wwfakecorp"
    corp_secret: str = "fake-corp-secret"
    robot_key: str = "robot-key"
    expires_in: int = 7200
    robot_per_minute: int = 20
    token_delay_s: float = 0.0

    requests: list[Recorded] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    _script: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))
    _robot_times: deque[float] = field(default_factory=deque)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _used_response_codes: set[str] = field(default_factory=set)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>/cgi-bin/` — what `wechat_api_base_url` points at."""
        return f"http://127.0.0.1:{self.port}/cgi-bin/"

    @property
    def robot_url(self) -> str:
        """The group robot webhook URL with its key."""
        return f"{self.base_url}webhook/send?key={self.robot_key}"

    def script(self, endpoint: str, *answers: int | tuple[str, int]) -> None:
        """Queue answers for the next calls to `endpoint`: an errcode, or ("http", 502)."""
        with self._lock:
            self._script[endpoint].extend(answers)

    def expire_tokens(self) -> None:
        """Make every issued token invalid (the next call with one gets 42001)."""
        with self._lock:
            self.valid_tokens.clear()

    def put_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        """Serve `data` for `media_id` at `media/get`."""
        with self._lock:
            self.media[media_id] = (data, content_type)

    def response_url(self, code: str = "RESPONSE_CODE") -> str:
        """An AI bot `response_url` on this server."""
        return f"{self.base_url}aibot/response?response_code={code}"

    def calls(self, endpoint: str) -> list[Recorded]:
        """The recorded calls to `endpoint`, in order (including refused ones)."""
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def sent(self, endpoint: str) -> list[dict[str, Any]]:
        """The bodies that `endpoint` accepted (errcode 0)."""
        with self._lock:
            return [r.body for r in self.requests if r.endpoint == endpoint + ":ok" and r.body]

    def start(self) -> FakeWeChatServer:
        """Start serving on a free port."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                endpoint = _PATHS.get(parsed.path)
                if endpoint is None:
                    self._answer(404, {"errcode": 404, "errmsg": "not found"})
                    return
                if endpoint == MEDIA_GET:
                    served = fake._media(query)
                    if served is not None:
                        data, content_type = served
                        self.send_response(200)
                        self.send_header("Content-Type", content_type)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                status, payload = fake._respond(endpoint, query, body)
                self._answer(status, payload)

            do_GET = _handle
            do_POST = _handle

        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        return self

    # ------------------------------------------------------------ behaviour

    def _media(self, query: dict[str, str]) -> tuple[bytes, str] | None:
        """The bytes of a media download, or None to answer with an errcode."""
        with self._lock:
            if query.get("access_token", "") not in self.valid_tokens:
                return None
            served = self.media.get(query.get("media_id", ""))
            if served is not None:
                self.requests.append(Recorded(MEDIA_GET + ":ok", query, None))
            return served

    def _respond(
        self, endpoint: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        if endpoint in (TOKEN, WECOM_TOKEN) and self.token_delay_s:
            time.sleep(self.token_delay_s)
        with self._lock:
            self.requests.append(Recorded(endpoint, query, body))
            scripted = self._script[endpoint].popleft() if self._script[endpoint] else None
            if isinstance(scripted, tuple):
                return scripted[1], {"errcode": -1, "errmsg": "server error"}
            if scripted is not None:
                return 200, {"errcode": scripted, "errmsg": f"scripted {scripted}"}
            if endpoint == TOKEN:
                if query.get("appid") != self.app_id or query.get("secret") != self.app_secret:
                    return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
                return 200, self._issue("mp")
            if endpoint == WECOM_TOKEN:
                if query.get("corpid") != self.corp_id or query.get("corpsecret") != (
                    self.corp_secret
                ):
                    return 200, {"errcode": 40001, "errmsg": "invalid credential"}
                return 200, self._issue("wecom")
            if endpoint == MSG_RECORD:  # 客服聊天记录: what the customer-service API accepted
                return 200, self._message_records(body or {})
            if endpoint == AIBOT_RESPONSE:
                response_code = query.get("response_code", "")
                if not response_code or response_code in self._used_response_codes:
                    return 200, {"errcode": 40001, "errmsg": "invalid response_code"}
                self._used_response_codes.add(response_code)
            elif endpoint == MEDIA_GET and query.get("access_token", "") in self.valid_tokens:
                return 200, {"errcode": 40007, "errmsg": "invalid media_id"}
            elif endpoint == ROBOT:
                if query.get("key") != self.robot_key:
                    return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
                now = time.monotonic()
                while self._robot_times and self._robot_times[0] <= now - 60:
                    self._robot_times.popleft()
                if len(self._robot_times) >= self.robot_per_minute:
                    return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
                self._robot_times.append(now)
            else:
                token = query.get("access_token", "")
                if token not in self.valid_tokens:
                    issued = token.startswith("ACCESS_")
                    code = 42001 if issued else 40001
                    return 200, {"errcode": code, "errmsg": "access_token invalid or expired"}
            self.requests.append(Recorded(endpoint + ":ok", query, body))
            return 200, {"errcode": 0, "errmsg": "ok"}

    def _message_records(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end = int(body.get("starttime", 0)), int(body.get("endtime", 2**31))
        records = [
            {
                "openid": r.body.get("touser"),
                "opercode": 2002,  # 客服发送消息
                "text": (r.body.get("text") or {}).get("content", ""),
                "time": int(r.at),
                "worker": "",
            }
            for r in self.requests
            if r.endpoint == CUSTOM_SEND + ":ok" and r.body and start <= int(r.at) <= end
        ]
        return {"recordlist": records, "number": len(records), "msgid": len(records) + 1}

    def _issue(self, kind: str) -> dict[str, Any]:
        self._counter += 1
        token = f"ACCESS_{kind}_{self._counter}"
        self.valid_tokens.add(token)
        return {"access_token": token, "expires_in": self.expires_in}


# ---------------------------------------------------------------- the callback side


def fresh_nonce() -> str:
    """A random numeric nonce, as WeChat sends with every callback."""
    return str(secrets.randbelow(10**9) + 10**9)


@dataclass
class CallbackSigner:
    """Builds WeChat's callback requests for a token / EncodingAESKey / AppID (or CorpID)."""

    token: str
    aes_key: str | None = None
    receive_id: str = ""

    @property
    def crypto(self) -> MessageCrypto:
        assert self.aes_key is not None
        return MessageCrypto(token=self.token, aes_keys=[self.aes_key], receive_id=self.receive_id)

    def plain_query(self, timestamp: int, nonce: str | None = None) -> dict[str, str]:
        """Query parameters of a plaintext-mode callback (a fresh nonce each, like WeChat)."""
        ts = str(timestamp)
        nonce = nonce or fresh_nonce()
        return {"signature": sha1_signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}

    def encrypted(
        self, xml: str, timestamp: int, nonce: str | None = None, *, mp: bool = True
    ) -> tuple[dict[str, str], bytes]:
        """(query, body) of an encrypted callback: safe mode for MP, the WeCom format otherwise."""
        ts = str(timestamp)
        nonce = nonce or fresh_nonce()
        encrypt = self.crypto.encrypt(xml.encode())
        msg_signature = sha1_signature(self.token, ts, nonce, encrypt)
        query = {"msg_signature": msg_signature, "timestamp": ts, "nonce": nonce}
        if mp:
            query["signature"] = sha1_signature(self.token, ts, nonce)
            query["encrypt_type"] = "aes"
        body = (
            f"<xml><ToUserName><![CDATA[{self.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        return query, body.encode()

    def aibot(
        self, payload: dict[str, Any], timestamp: int, nonce: str = "12345"
    ) -> tuple[dict[str, str], bytes]:
        """(query, body) of an AI bot callback: JSON `{"encrypt": ...}`, signed as WeCom does."""
        ts = str(timestamp)
        encrypt = self.crypto.encrypt(json.dumps(payload, ensure_ascii=False).encode())
        query = {
            "msg_signature": sha1_signature(self.token, ts, nonce, encrypt),
            "timestamp": ts,
            "nonce": nonce,
        }
        return query, json.dumps({"encrypt": encrypt}).encode()

    def aibot_echostr(self, text: str, timestamp: int, nonce: str = "12345") -> dict[str, str]:
        """The query of the AI bot's GET URL check for the plaintext `text`."""
        ts = str(timestamp)
        echostr = self.crypto.encrypt(text.encode())
        return {
            "msg_signature": sha1_signature(self.token, ts, nonce, echostr),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }

    def open_aibot_reply(self, body: bytes) -> dict[str, Any]:
        """Check and decrypt an AI bot reply as WeCom does; the plaintext JSON message."""
        envelope = json.loads(body)
        encrypt = envelope["encrypt"]
        expected = sha1_signature(
            self.token, str(envelope["timestamp"]), envelope["nonce"], encrypt
        )
        assert envelope["msgsignature"] == expected, "reply signature does not match"
        plain, _ = self.crypto.decrypt(encrypt)
        message: dict[str, Any] = json.loads(plain)
        return message


def text_xml(
    *, sender: str = "oUser1", to: str = "gh_account", content: str = "你好",
    msg_id: str = "1000001", create_time: int = 1700000000, agent_id: str | None = None,
) -> str:
    """A text message as WeChat sends it."""
    agent = f"<AgentID>{agent_id}</AgentID>" if agent_id else ""
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>{agent}</xml>"
    )

