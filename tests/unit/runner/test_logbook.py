"""Bounded logs: first and latest lines, with a marker in between."""

from services.runner.logbook import LogBook


def test_short_logs_are_kept_whole() -> None:
    book = LogBook(100, 100)
    assert book.add("one\ntwo\n") == "one\ntwo\n"
    assert book.add("three") == "three"
    assert book.render() == "one\ntwo\nthree"
    assert not book.truncated


def test_long_logs_keep_head_and_tail_with_a_marker() -> None:
    book = LogBook(20, 20)
    head = "".join(book.add(f"line {i:02d}\n") for i in range(50))
    assert head == "line 00\nline 01\n"  # only what fits in the head is reported as it comes
    rendered = book.render()
    assert rendered.startswith("line 00\nline 01\n... [")
    assert rendered.endswith("line 48\nline 49\n")
    assert "line 25" not in rendered
    assert "46 log line(s), 368 bytes, truncated" in rendered
    assert book.truncated


def test_head_stays_closed_once_full() -> None:
    book = LogBook(10, 100)
    book.add("0123456789ab\n")
    assert book.add("x\n") == ""
    assert book.render() == "0123456789ab\nx\n"
