"""The admin guard: token buckets per caller, the token check, and which caller is which."""

from __future__ import annotations

import pytest

from vsearch.serving.guard import AdminGuard, RateLimiter
from vsearch.serving.http import HttpError
from vsearch.settings import ServingSettings

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one more in 1/rate seconds
    assert limiter.take("b") == 0.0  # another caller has its own bucket
    clock.t += 0.5
    assert limiter.take("a") == 0.0
    clock.t += 100  # idle: refilled, but never above the burst
    assert [limiter.take("a") for _ in range(4)][-1] > 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(0.0, 1)


def _guard(token: str | None, rate: float = 0.001, burst: int = 2) -> AdminGuard:
    settings = ServingSettings(admin_rate_per_s=rate, admin_rate_burst=burst)
    env = {settings.admin_token_env: token} if token else {}
    return AdminGuard(settings, environ=env)


def _status(guard: AdminGuard, auth: str | None, client: str = "10.0.0.1") -> int:
    headers = {"authorization": auth} if auth else {}
    try:
        guard.check(headers, client)
    except HttpError as exc:
        return exc.status
    return 200


def test_token_check() -> None:
    guard = _guard("s3cret", rate=100, burst=100)
    assert _status(guard, "Bearer s3cret") == 200
    assert _status(guard, "Bearer wrong") == 403
    assert _status(guard, "Basic czNjcmV0") == 401
    assert _status(guard, None) == 401
    assert _status(_guard(None, rate=100, burst=100), "Bearer s3cret") == 403  # disabled


def test_guessers_are_limited_by_address_and_the_token_by_itself() -> None:
    guard = _guard("s3cret")
    assert [_status(guard, f"Bearer guess{i}") for i in range(3)] == [403, 403, 429]
    assert _status(guard, "Bearer guess", client="10.0.0.2") == 403  # another address
    assert [_status(guard, "Bearer s3cret") for _ in range(3)] == [200, 200, 429]
    try:
        guard.check({"authorization": "Bearer s3cret"}, "10.0.0.9")
    except HttpError as exc:  # the valid token is one caller wherever it comes from
        assert exc.status == 429 and int(exc.headers["Retry-After"]) >= 1


def test_info_view_is_public_without_a_header() -> None:
    guard = _guard("s3cret")
    assert guard.is_admin({}, "10.0.0.1") is False
    assert guard.is_admin({"authorization": "Bearer s3cret"}, "10.0.0.1") is True
    with pytest.raises(HttpError):
        guard.is_admin({"authorization": "Bearer no"}, "10.0.0.1")
