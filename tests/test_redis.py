"""Redis as a real option (``REDIS_URL``): the cache and the django-q2 broker live there, under this
installation's ``Q_CLUSTER_NAME``, and the portal's rate limits hold across server processes.

Every test here needs a Redis server and skips without ``REDIS_URL`` (CI runs the suite once with it).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections

from dunning.portal.tokens import portal_link_for
from tests.factories import failed_invoice

pytestmark = pytest.mark.redis
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_the_cache_lives_in_redis_under_the_installation_prefix(_isolated_cache: str, client_redis) -> None:  # type: ignore[no-untyped-def]
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    cache.set("probe", "here", 60)
    # Django's key format: <prefix>:<version>:<key>. The prefix starts with the cluster name.
    assert _isolated_cache.startswith(settings.Q_CLUSTER_NAME)
    assert client_redis.exists(f"{_isolated_cache}:1:probe") == 1


@pytest.mark.parametrize("run", [1, 2])
def test_a_test_never_sees_the_cache_keys_of_another(run: int) -> None:
    # Whichever of the two runs second would find the first one's key without per-test prefixes.
    assert cache.get("left-behind") is None
    assert cache.add("left-behind", run, 600)


def _manage(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_two_installations_sharing_a_redis_keep_their_queues_apart(client_redis) -> None:  # type: ignore[no-untyped-def]
    """A task enqueued by an installation named ``a`` lands in a's queue, never in b's (nor ours)."""
    name_a, name_b = f"inst-a-{uuid.uuid4().hex[:8]}", f"inst-b-{uuid.uuid4().hex[:8]}"
    queue_a, queue_b = f"django_q:{name_a}:q", f"django_q:{name_b}:q"
    ours = f"django_q:{settings.Q_CLUSTER['name']}:q"
    before = client_redis.llen(ours)
    try:
        done = _manage(
            ["shell", "-c", "from django_q.tasks import async_task; async_task('math.floor', 1.5)"],
            Q_CLUSTER_NAME=name_a,
            Q_SYNC="0",
            DATABASE_URL=_database_url(),
        )
        assert done.returncode == 0, done.stderr
        assert client_redis.llen(queue_a) == 1
        assert client_redis.llen(queue_b) == 0
        assert client_redis.llen(ours) == before
    finally:
        client_redis.delete(queue_a, queue_b)


# --- The portal's limits across processes ----------------------------------------------------------------


def _database_url() -> str:
    conf = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{conf['NAME']}"
    password = f":{conf['PASSWORD']}" if conf["PASSWORD"] else ""
    return (
        f"postgres://{conf['USER'] or 'postgres'}{password}@{conf['HOST'] or '127.0.0.1'}:"
        f"{conf['PORT'] or 5432}/{conf['NAME']}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    """``gunicorn config.wsgi`` with one worker on a free port: a web process of its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        command = ["gunicorn", "config.wsgi", "--workers", "1", "--bind", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server stopped: {self.process.stderr.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"{self.base}/healthz/live", timeout=10):
                    return
            except OSError:  # refused while starting, or slow to answer its first request
                time.sleep(0.2)
        raise AssertionError("the server did not start in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("dunning_seeds")
def test_a_portal_limit_holds_across_two_server_processes(_isolated_cache: str) -> None:
    """Four posts per link, alternately to two web processes: the fifth is refused, whichever process gets
    it. With a per-process cache each process would count only its own and let eight through."""
    _, invoice, _ = failed_invoice(card="pm_sim_4000000000009995")
    link = portal_link_for(customer_id=invoice.customer_id, invoice_id=invoice.pk, source="email")
    path = "/portal/" + link.split("/portal/")[1]
    connections.close_all()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "Q_CLUSTER_NAME": _isolated_cache,  # the servers' cache prefix: this test's, deleted afterwards
        "PORTAL_POSTS_PER_LINK": "4",
        "PORTAL_RATE_LIMIT_WINDOW_SECONDS": "86400",  # no window edge in the middle of the test
    }
    servers = [_Server(env), _Server(env)]
    try:
        for server in servers:
            server.wait_ready()
        with urllib.request.urlopen(servers[0].base + path, timeout=30) as page:
            html = page.read().decode()
            # The cookie is Secure (debug is off), so send it by hand over plain http.
            cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"] or "")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert csrf is not None and cookie is not None
        statuses = []
        for number in range(6):
            request = urllib.request.Request(
                servers[number % 2].base + path + "card/",
                data=f"csrfmiddlewaretoken={csrf.group(1)}&number=1&expiry=".encode(),
                headers={"Cookie": f"csrftoken={cookie.group(1)}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for server in servers:
            server.stop()
