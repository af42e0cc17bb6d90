"""Fixtures for the registry unit tests."""

import pytest
from registry_fakes import FakeClock, FakeViews, InMemoryEventLog


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def event_log() -> InMemoryEventLog:
    return InMemoryEventLog()


@pytest.fixture
def views(event_log: InMemoryEventLog) -> FakeViews:
    return FakeViews(event_log)
