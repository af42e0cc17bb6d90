"""Token-bucket arithmetic with an injected clock."""

from services.gateway.ratelimit import Limit, RateLimiter, TokenBucket


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(capacity=3, rate=1.0, now=0.0)
    decisions = [bucket.take(0.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after == 1


def test_refill_is_continuous_and_capped_at_capacity() -> None:
    bucket = TokenBucket(capacity=2, rate=0.5, now=0.0)
    assert bucket.take(0.0).allowed and bucket.take(0.0).allowed
    refused = bucket.take(1.0)  # half a request refilled
    assert not refused.allowed and refused.retry_after == 1
    assert bucket.take(2.0).allowed  # one whole request after 2 s at 0.5/s
    assert not bucket.take(2.0).allowed
    bucket.take(1000.0)
    assert bucket.tokens == 1.0  # refilled to capacity (2), minus the one just taken


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    bucket = TokenBucket(capacity=1, rate=0.1, now=0.0)  # 6 per minute
    assert bucket.take(0.0).allowed
    assert bucket.take(0.0).retry_after == 10
    assert bucket.take(7.5).retry_after == 3  # 2.5 s left, rounded up
    assert bucket.take(10.0).allowed


def test_a_clock_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(capacity=1, rate=1.0, now=10.0)
    assert bucket.take(10.0).allowed
    assert not bucket.take(5.0).allowed


def test_limiter_keeps_one_bucket_per_key_and_kind() -> None:
    clock = ManualClock()
    limiter = RateLimiter({"predictions": Limit(60, 2), "requests": Limit(600, 1)}, clock=clock)
    assert [limiter.take("a", "predictions").allowed for _ in range(3)] == [True, True, False]
    assert limiter.take("b", "predictions").allowed  # another token has its own bucket
    assert limiter.take("a", "requests").allowed  # and another kind its own limit
    assert not limiter.take("a", "requests").allowed
    clock.now += 1.0  # 1 prediction per second
    assert limiter.take("a", "predictions").allowed
    assert not limiter.take("a", "predictions").allowed


def test_disabled_or_unknown_limits_allow_everything() -> None:
    limiter = RateLimiter({"predictions": Limit(0, 10)}, clock=ManualClock())
    assert all(limiter.take("a", "predictions").allowed for _ in range(1000))
    assert all(limiter.take("a", "other").allowed for _ in range(1000))


def test_the_bucket_table_stays_bounded() -> None:
    clock = ManualClock()
    limiter = RateLimiter({"requests": Limit(60, 1)}, clock=clock, max_buckets=2)
    assert limiter.take("a", "requests").allowed
    assert limiter.take("b", "requests").allowed
    clock.now += 0.5  # neither has refilled; a new key evicts the oldest bucket only
    assert limiter.take("c", "requests").allowed
    assert not limiter.take("b", "requests").allowed
    assert len(limiter._buckets) == 2
    clock.now += 10  # all full again: they are dropped first, as a full bucket equals a new one
    assert limiter.take("d", "requests").allowed
    assert not limiter.take("d", "requests").allowed
    assert set(limiter._buckets) == {("d", "requests")}
