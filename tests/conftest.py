"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import connection


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` need row locks and real concurrency; on SQLite they skip with a reason.
    Tests marked ``redis`` need a shared cache and broker; without ``REDIS_URL`` they skip with a reason."""
    from django.conf import settings

    skips = {}
    if connection.vendor != "postgresql":
        skips["postgres"] = pytest.mark.skip(
            reason="needs PostgreSQL: set DATABASE_URL=postgres://... (CI runs it)"
        )
    if not settings.REDIS_URL:
        skips["redis"] = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://... (CI runs it)")
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    """pytest-django's client, whose ``force_login`` of a staff member also verifies a second factor (the
    admin asks for one: config/staff_auth/). ``force_login(user, second_factor=False)`` skips it."""
    from tests.support.staff import StaffClient

    return StaffClient()


@pytest.fixture
def admin_client(db, admin_user):  # type: ignore[no-untyped-def]
    """pytest-django's admin client: a superuser, signed in with a verified second factor."""
    from tests.support.staff import StaffClient

    client = StaffClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def staff_user(django_user_model):  # type: ignore[no-untyped-def]
    """A staff member with no permissions at all: tests grant what they need."""
    return django_user_model.objects.create_user(username="finance", password="pw", is_staff=True)


@pytest.fixture(autouse=True)
def _isolated_cache(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Cached admin filter choices and rate-limit counters must not leak from one test into the next.

    On Redis (``REDIS_URL``) every test gets a key prefix of its own, and its keys are deleted afterwards:
    the database may be shared with other runs, so it is never flushed. Yields the prefix ("" locally).
    """
    from django.core.cache import cache

    if not redis_cache_configured():
        cache.clear()
        yield ""
        return
    prefix = f"{settings.Q_CLUSTER_NAME}-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    yield prefix
    redis_delete_prefixed(prefix)


def redis_cache_configured() -> bool:
    from django.conf import settings

    return settings.CACHES["default"]["BACKEND"].endswith("RedisCache")


def redis_delete_prefixed(prefix: str) -> int:
    """Delete the keys under ``prefix:`` (a test's cache keys), never anything else."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _fresh_circuit_counters() -> None:
    """The circuit breaker's in-process counts must not carry from one test into the next."""
    from dunning.services import circuit

    with circuit._counters_lock:
        circuit._counters.clear()


@pytest.fixture
def dunning_seeds(django_db_blocker: object) -> None:
    """Data migrations' rows (decline codes, the default policy) for ``transaction=True`` tests.

    Those tests end with a flush that empties every table, so they put the seeds back themselves rather than
    relying on serialized rollback (which clashes with content types recreated by other tests' flushes).
    """
    import importlib

    from django.apps import apps

    from dunning.models import DeclineCode, DunningPolicy

    if not DeclineCode.objects.exists():
        importlib.import_module("dunning.migrations.0002_seed_decline_codes").seed(apps, None)
        importlib.import_module("dunning.migrations.0008_stripe_events").seed(apps, None)
        importlib.import_module("dunning.migrations.0009_money_safety").seed_internal_codes(apps, None)
    if not DunningPolicy.objects.filter(name="Default").exists():
        importlib.import_module("dunning.migrations.0003_default_policy").create(apps, None)


@pytest.fixture(scope="session")
def localstripe():  # type: ignore[no-untyped-def]
    """The patched localstripe server, started once per run on a free port. Never skipped: if it cannot
    start, every Stripe test fails with the reason (CI installs it with the dev extra)."""
    from tests.support.localstripe import LocalStripe

    server = LocalStripe().start()
    yield server
    server.stop()


@pytest.fixture
def stripe_account(localstripe, settings):  # type: ignore[no-untyped-def]
    """A fresh Stripe test account, and settings that point the application at it (PAYMENT_GATEWAY=stripe).

    Each test gets its own idempotency prefix: attempt ids repeat after rollbacks (SQLite), and Stripe would
    replay another test's answer for a repeated key, exactly as it would for two installations sharing an
    account without distinct prefixes.
    """
    import uuid

    from tests.support.localstripe import TEST_SECRET_KEY
    from tests.support.stripe_account import WEBHOOK_SECRET, StripeAccount

    localstripe.reset()
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = TEST_SECRET_KEY
    settings.STRIPE_API_BASE = localstripe.base_url
    settings.STRIPE_WEBHOOK_SECRET = [WEBHOOK_SECRET]
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    settings.DUNNING_IDEMPOTENCY_PREFIX = f"t{uuid.uuid4().hex[:12]}"
    return StripeAccount(localstripe)


@pytest.fixture
def fixed_default_policy(db: object) -> None:
    """The Default policy with the fixed days and hours it shipped with before smart timing (retries on
    day 1, 4 and 8 at 09:00), published as its newest version. For tests of the engine's mechanics that
    need to know when a retry runs; the smart Default has its own tests (test_smart_retries.py)."""
    import importlib

    from customers.actors import Actor
    from dunning.models import DunningPolicy, PolicyStep
    from dunning.services.policies import policy_publish

    shipped = importlib.import_module("dunning.migrations.0012_default_policy_smart").SHIPPED
    policy = DunningPolicy.objects.get(name="Default")
    PolicyStep.objects.filter(policy=policy).delete()
    for position, (day, hour, action, template, categories) in enumerate(shipped, start=1):
        PolicyStep.objects.create(
            policy=policy,
            position=position,
            day_offset=day,
            local_hour=hour,
            action=action,
            template_key=template,
            decline_categories=categories,
        )
    policy_publish(policy=policy, actor=Actor.system("tests"))
