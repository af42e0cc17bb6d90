"""How the chaos run counts a webhook POSTed more than once."""

from __future__ import annotations

from cogwheel.chaos import _repeated_posts, killed_during

DELIVERED = ("msg_a", "1", "200", None, "delivered")
TIMED_OUT = ("msg_a", "1", None, "TimeoutError", "failed")


def test_a_post_no_attempt_accounts_for_is_a_duplicate_unless_a_dispatcher_died_meanwhile() -> None:
    # Two POSTs of one delivery, one recorded attempt: the first POST's sender never recorded it.
    assert _repeated_posts(["msg_a", "msg_a"], [DELIVERED], sender_killed=False) == "dup"
    assert _repeated_posts(["msg_a", "msg_a"], [DELIVERED], sender_killed=True) == "retried"
    # Even then, only one such POST.
    assert _repeated_posts(["msg_a"] * 3, [DELIVERED], sender_killed=True) == "dup"


def test_recorded_retries_count_once_and_other_ids_or_two_deliveries_are_duplicates() -> None:
    assert _repeated_posts(["msg_a", "msg_a"], [TIMED_OUT, DELIVERED[:1] + ("2",) + DELIVERED[2:]],
                           sender_killed=False) == "retried"
    assert _repeated_posts(["msg_a", "msg_b"], [DELIVERED], sender_killed=True) == "dup"
    assert _repeated_posts(["msg_a", "msg_a"], [DELIVERED, DELIVERED], sender_killed=True) == "dup"


def test_a_kill_counts_for_the_deliveries_under_way_whichever_burst_made_them() -> None:
    queued, settled = 100.0, 120.0
    assert killed_during(queued, settled, [101.5])
    assert not killed_during(queued, settled, [99.0, 121.0])
    assert not killed_during(queued, settled, [])
