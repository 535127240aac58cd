"""Background jobs on huey: SQLite in the data dir by default, Redis when `YISHI_REDIS_URL` is set.

Domains register plain functions with `@job(...)`; `configure(settings)` builds the huey instance
and wraps them. Huey's queue alone is not what makes work durable: each domain keeps its own state
in the database and a periodic sweep re-enqueues anything a dead process left behind.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from yishi.core.config import Settings

log = logging.getLogger(__name__)

# Modules whose import registers jobs.
JOB_MODULES = ("yishi.bot.pipeline", "yishi.bot.memory", "yishi.deliberation.flows")


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
    return SqliteHuey("yishi", filename=str(path), fsync=False)


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


def start_consumer(huey: Huey, *, workers: int) -> Consumer:
    """Start worker threads and the scheduler in this process."""
    consumer = _InProcessConsumer(
        huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=False
    )
    consumer.start()
    return consumer


def run_consumer(huey: Huey, *, workers: int) -> None:
    """Run a standalone consumer in the foreground until interrupted (`yishi worker`)."""
    consumer = Consumer(huey, workers=workers, worker_type="thread", periodic=True)
    consumer.run()
