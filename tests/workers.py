"""A real Celery worker for the tests that need one: started on the pytest test database
and the broker of ``CELERY_BROKER_URL``, stopped before pytest drops that database.

Used as ``@pytest.fixture(scope="module")`` by the test modules that send tasks to it
(module-scoped, so that no other module's tasks reach it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from celery import Celery
from django.conf import settings
from django.db import connection
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from config import celery_app

POLL_SECONDS = 0.2
TIMEOUT_SECONDS = 30.0


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT_SECONDS):
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def worker_database_url() -> str:
    """The pytest test database (not the one DATABASE_URL names) as a URL for the worker."""
    database = connection.settings_dict
    user = quote(database["USER"] or "postgres")
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    host = database["HOST"] or "127.0.0.1"
    port = database["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    command: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    restarts: int = 0

    def restart_if_exited(self) -> bool:
        """Start the worker again if it has exited, as the deployment's supervisor does
        (``restart: unless-stopped`` in docker-compose.yml); True if it had to."""
        if self.process.poll() is None:
            return False
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=settings.BASE_DIR,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.restarts += 1
        return True

    def wait_for(
        self, condition: Callable[[], object], what: str, timeout: float = TIMEOUT_SECONDS
    ):
        """``wait_for`` that shows the end of the worker's log when it times out."""
        try:
            return wait_for(condition, what, timeout)
        except AssertionError as error:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{error}\n--- worker log (end) ---\n{tail}") from None

    def handled(self, task: str) -> int:
        """How many runs of ``task`` the worker has logged as succeeded."""
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if task in line and "succeeded" in line)


@contextmanager
def tasks_go_to_the_broker() -> Iterator[None]:
    """Publish instead of running in-process, to the broker the worker listens on."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.broker_url)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous


@contextmanager
def _client(broker_url: str) -> Iterator[Celery]:
    """A bare Celery client on ``broker_url``. Celery lets CELERY_BROKER_URL in the
    environment win over any broker it is given, so the variable is set while it works."""
    previous = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker_url
    client = Celery("pytest-client", broker=broker_url, set_as_current=False)
    try:
        yield client
    finally:
        client.close()
        if previous is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous


def ping(broker_url: str) -> list[dict]:
    """The workers on ``broker_url`` that answer a ping (none while the broker is away)."""
    with _client(broker_url) as client:
        try:
            return client.control.ping(timeout=0.5) or []
        except (OperationalError, RedisError, OSError):
            return []


def send_task(broker_url: str, name: str) -> None:
    """Publish task ``name`` on ``broker_url``, as beat does on schedule."""
    with _client(broker_url) as client:
        client.send_task(name)


@contextmanager
def celery_worker(
    log_directory: Path,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    label: str = "pytest",
    broker_url: str | None = None,
    environment: dict[str, str] | None = None,
) -> Iterator[Worker]:
    """Start a worker (on ``broker_url``, by default CELERY_BROKER_URL), wait until it
    answers a ping, and stop it on the way out."""
    name = f"{label}-{uuid.uuid4().hex[:8]}@%h"
    log = log_directory / "worker.log"
    broker_url = broker_url or os.environ["CELERY_BROKER_URL"]
    environment = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
        **(environment or {}),
    }
    environment.pop("EMAIL_URL", None)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        pool,
        *(["--concurrency", str(concurrency)] if pool == "prefork" else []),
        "--loglevel",
        "info",
        "--hostname",
        name,
        "--without-gossip",
        "--without-mingle",
        "--purge",  # messages a killed earlier run left behind must not run on this database
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        expected = name.replace("%h", "")

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
            replies = ping(broker_url)
            return any(expected in host for reply in replies for host in reply)

        try:
            wait_for(answers, "the Celery worker to answer a ping", timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{log.read_text()[-3000:]}") from error
        worker = Worker(process=process, log=log, command=command, environment=environment)
        yield worker
        process = worker.process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
