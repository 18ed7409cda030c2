"""Settings for the test suite: production settings with test-only keys and fast hashing.

The environment still decides the database (``DATABASE_URL``), so the same suite runs on SQLite and on
PostgreSQL.
"""

import os

os.environ["DJANGO_READ_DOT_ENV"] = "0"
os.environ["DJANGO_DEBUG"] = "false"
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# Never the queue or the cache keys of an installation that shares the Redis database.
os.environ.setdefault("Q_CLUSTER_NAME", "dunning-test")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# With REDIS_URL the suite runs on Redis, as production does (every test gets a key prefix of its own,
# tests/conftest.py); without it, on a per-process memory cache.
if not REDIS_URL:  # noqa: F405
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Static files come from the finders in tests; there is no collectstatic output to scan.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Tasks run in-process, at the moment they are enqueued (tests enqueue inside transaction.on_commit).
# The benchmarks (which use these settings too) set Q_SYNC=0 to enqueue tasks as production does.
Q_CLUSTER = {**Q_CLUSTER, "sync": env.bool("Q_SYNC", default=True)}  # noqa: F405
# Gateway calls run in the test's own thread (and so inside its transaction); the thread pool is
# exercised explicitly by the tests that need it, on committed data.
DUNNING_GATEWAY_CONCURRENCY = 1
