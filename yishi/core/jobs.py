"""Background jobs on huey: SQLite in the data dir by default, Redis when `YISHI_REDIS_URL` is set.

Domains register plain functions with `@job(...)`; `configure(settings)` builds the huey instance
and wraps them. Huey's queue alone is not what makes work durable: each domain keeps its own state
in the database and a periodic sweep re-enqueues anything a dead process left behind.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, crontab
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from yishi.core.config import Settings

log = logging.getLogger(__name__)

# Modules whose import registers jobs.
JOB_MODULES = (
    "yishi.bot.pipeline",
    "yishi.bot.memory",
    "yishi.deliberation.flows",
    "yishi.privacy.service",
    "yishi.bot.aibot",
)


@dataclass
class JobSpec:
    name: str
    fn: Callable[..., Any]
    retries: int
    retry_delay: int
    periodic: str | None  # crontab minute spec, e.g. "*/5"


_specs: dict[str, JobSpec] = {}
_tasks: dict[str, Any] = {}
_huey: Huey | None = None
_lock = threading.Lock()


def job(
    name: str, *, retries: int = 3, retry_delay: int = 5, periodic: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` as a background job (or, with `periodic`, one that runs on a schedule)."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        _specs[name] = JobSpec(name, fn, retries, retry_delay, periodic)
        return fn

    return decorator


def _import_job_modules() -> None:
    for module in JOB_MODULES:
        importlib.import_module(module)


def build_huey(settings: Settings, *, immediate: bool | None = None) -> Huey:
    """A huey instance for `settings` (not yet the process-wide one)."""
    immediate = settings.jobs_immediate if immediate is None else immediate
    if immediate:
        return MemoryHuey("yishi", immediate=True)
    if settings.redis_url:
        return RedisHuey("yishi", url=settings.redis_url)
    path = settings.ensure_data_dir() / "jobs.db"
    # No fsync per enqueue: a job lost in a crash is found again by the sweep, because the
    # message it was for is stored in the application database before WeChat is answered.
    return Huey("yishi", storage_class=_ZeroingSqliteStorage, filename=str(path), fsync=False)


class _ZeroingSqliteStorage(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite queue with `secure_delete`: a finished job's payload is overwritten."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma secure_delete=on")
        return conn


def configure(settings: Settings, *, immediate: bool | None = None) -> Huey:
    """Build the process-wide huey and register every job on it."""
    global _huey
    with _lock:
        _import_job_modules()
        huey = build_huey(settings, immediate=immediate)
        tasks: dict[str, Any] = {}
        for spec in _specs.values():
            if spec.periodic:
                schedule = crontab(minute=spec.periodic)
                tasks[spec.name] = huey.periodic_task(schedule, name=spec.name)(spec.fn)
            else:
                tasks[spec.name] = huey.task(
                    retries=spec.retries,
                    retry_delay=spec.retry_delay,
                    retry_backoff=2,
                    name=spec.name,
                )(spec.fn)
        _tasks.clear()
        _tasks.update(tasks)
        _huey = huey
        return huey


def get_huey() -> Huey:
    if _huey is None:
        raise RuntimeError("jobs are not configured: call yishi.core.jobs.configure(settings)")
    return _huey


def enqueue(name: str, *args: Any, delay: float | None = None) -> None:
    """Run job `name` on the worker (at once in immediate mode)."""
    if _huey is None:
        raise RuntimeError("jobs are not configured: call yishi.core.jobs.configure(settings)")
    task = _tasks[name]
    if delay:
        task.schedule(args=args, delay=delay)
    else:
        task(*args)


def run_now(name: str, *args: Any) -> Any:
    """Call a registered job's function directly in this process (sweeps, tests)."""
    _import_job_modules()
    return _specs[name].fn(*args)


class _InProcessConsumer(Consumer):  # type: ignore[misc]
    """A consumer that runs beside the web server: leaves the server's signal handlers alone."""

    def _set_signal_handlers(self) -> None:
        pass


def redact_url(url: str) -> str:
    """A URL with any password masked (safe to log)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    return url


_health_hueys: dict[str, Huey] = {}


def _health_huey(settings: Settings) -> Huey:
    """A huey on the same queue with short socket timeouts (a health check must not hang)."""
    key = settings.redis_url or str(settings.ensure_data_dir() / "jobs.db")
    huey = _health_hueys.get(key)
    if huey is None:
        if settings.redis_url:
            from yishi.core.adapters import redis_client

            client = redis_client(
                settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0
            )
            huey = RedisHuey("yishi", connection_pool=client.connection_pool)
        else:
            huey = Huey("yishi", storage_class=_ZeroingSqliteStorage, filename=key, fsync=False)
        huey = _health_hueys[key] = huey
    return huey


def broker_status(settings: Settings) -> dict[str, Any]:
    """Whether the job broker answers, and how many jobs wait in it (queued and scheduled)."""
    if settings.jobs_immediate:
        return {"ok": True, "queue_depth": 0, "error": None}
    try:
        huey = _health_huey(settings)
        depth = int(huey.pending_count()) + int(huey.scheduled_count())
    except Exception as exc:
        return {"ok": False, "queue_depth": None, "error": type(exc).__name__}
    return {"ok": True, "queue_depth": depth, "error": None}


def wait_for_broker(settings: Settings, *, max_wait_s: float | None = None) -> bool:
    """Block until the broker answers, one clear log line per try, backing off to 30 s.

    Returns False only when `max_wait_s` passed first. A wrong Redis URL is thus noticed at
    start (and named) instead of as a traceback storm.
    """
    started = time.monotonic()
    delay = 1.0
    while True:
        status = broker_status(settings)
        if status["ok"]:
            return True
        where = redact_url(settings.redis_url or "the SQLite job queue")
        if max_wait_s is not None and time.monotonic() - started + delay > max_wait_s:
            log.error("job broker at %s unreachable (%s); giving up", where, status["error"])
            return False
        log.error(
            "job broker at %s unreachable (%s); retrying in %.0f s",
            where,
            status["error"],
            delay,
        )
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


class ThrottleBrokerErrors(logging.Filter):
    """Huey logs a traceback at every poll while its broker is down; let one line through per
    interval instead (no traceback storm), with the error's name."""

    MESSAGES = ("Error reading from queue", "Error reading schedule.", "Error enqueueing")

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass other records; throttle and shorten huey's broker errors."""
        if not record.name.startswith("huey") or not record.exc_info:
            return True
        if not str(record.msg).startswith(self.MESSAGES):
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_s:
                self._suppressed += 1
                return False
            self._last, suppressed, self._suppressed = now, self._suppressed, 0
        exc = record.exc_info[1]
        record.msg = "job broker unreachable (%s: %s); retrying (%s similar errors hidden)"
        record.args = (type(exc).__name__, str(exc)[:200], suppressed)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.ERROR, "ERROR"
        return True


def install_broker_error_throttle() -> None:
    """Attach `ThrottleBrokerErrors` to the root handlers (once)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, ThrottleBrokerErrors) for f in handler.filters):
            handler.addFilter(ThrottleBrokerErrors())


def start_consumer(huey: Huey, *, workers: int) -> Consumer:
    """Start worker threads and the scheduler in this process."""
    install_broker_error_throttle()
    consumer = _InProcessConsumer(
        huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=False
    )
    consumer.start()
    return consumer


def run_consumer(huey: Huey, *, workers: int) -> None:
    """Run a standalone consumer in the foreground until interrupted (`yishi worker`)."""
    install_broker_error_throttle()
    consumer = Consumer(huey, workers=workers, worker_type="thread", periodic=True)
    consumer.run()
