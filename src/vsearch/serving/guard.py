"""Who may call the admin side of the service, and how often: the bearer token and a rate limit.

Why one module: ``POST /admin/...`` and the detailed ``/info`` (absolute paths, registry
errors, drop folders) are answered only to the holder of the admin token, and every request
that presents a token, right or wrong, is counted against a rate limit, so a token cannot be
guessed by brute force and a runaway admin client cannot monopolise the one admin thread.

The limit is a token bucket per caller: the presented admin token when it is the valid one
(one admin client, wherever it connects from), else the client's address (a guesser cannot
escape the bucket by changing the token it tries). A refused call is a 429 with
``Retry-After`` (whole seconds until the bucket holds one request again). Buckets live in the
worker process: with several BentoML workers each counts its own calls.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from vsearch.serving.http import HttpError
from vsearch.settings import ServingSettings

MAX_BUCKETS = 10_000  # callers remembered at once; the least recently seen is forgotten first


class RateLimiter:
    """Token buckets: ``burst`` requests at once, refilled at ``rate_per_s``; thread-safe.

    Args:
        rate_per_s: requests per second a caller may sustain.
        burst: requests a caller may make at once after being idle.
        clock: monotonic seconds (a parameter so tests can drive time).
    """

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"rate limit needs rate_per_s > 0 and burst >= 1, got {rate_per_s}, {burst}"
            )
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (level, t)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Count one request of ``key``: 0 when allowed, else the seconds until one would be."""
        with self._lock:
            now = self.clock()
            level, then = self._buckets.pop(key, (self.burst, now))
            level = min(self.burst, level + (now - then) * self.rate)
            if level >= 1.0:
                level -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - level) / self.rate
            self._buckets[key] = (level, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


class AdminGuard:
    """The admin token check and the admin rate limit of one service process.

    Args:
        settings: the ``serving:`` settings (token variable, rate limit).
        environ: where the token variable is read (the process environment).
    """

    def __init__(self, settings: ServingSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self.limiter = RateLimiter(settings.admin_rate_per_s, settings.admin_rate_burst)

    @property
    def enabled(self) -> bool:
        return bool(self.environ.get(self.settings.admin_token_env))

    def check(self, headers: Mapping[str, str], client: str) -> None:
        """Let an admin request through, or raise the refusal.

        Raises:
            HttpError: 429 (with ``Retry-After``) over the rate limit; 403 when the admin API
                is disabled (no token configured) or the token is wrong; 401 without a bearer
                token.
        """
        env = self.settings.admin_token_env
        token = self.environ.get(env, "")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        valid = bool(token) and bool(given) and hmac.compare_digest(given.encode(), token.encode())
        key = (
            "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
            if valid
            else "client:" + client
        )
        wait = self.limiter.take(key)
        if wait > 0:
            raise HttpError(
                429,
                "admin API: too many requests; retry after the Retry-After seconds "
                f"(limit {self.settings.admin_rate_per_s:g}/s, burst "
                f"{self.settings.admin_rate_burst})",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        if not token:
            raise HttpError(
                403,
                f"the admin API is disabled: set the environment variable {env} to a secret "
                "token and restart the service, then send 'Authorization: Bearer <token>'",
            )
        if not given:
            raise HttpError(
                401,
                "admin API: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": 'Bearer realm="vsearch-admin"'},
            )
        if not valid:
            raise HttpError(403, "admin API: the bearer token is not valid")

    def is_admin(self, headers: Mapping[str, str], client: str) -> bool:
        """For answers with a public and an admin view (``/info``): ``False`` without an
        ``Authorization`` header (the public view), ``True`` with the valid token.

        Raises:
            HttpError: a token was presented but refused (wrong, admin disabled, rate limit).
        """
        if not headers.get("authorization"):
            return False
        self.check(headers, client)
        return True
