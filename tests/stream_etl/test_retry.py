"""Backoff within a time budget: retries transient errors, then stops with a message naming the knob."""

from __future__ import annotations

import threading

import pytest

from stream_etl.errors import RetriesExhausted, SinkUnavailable, TerminalError
from stream_etl.retry import BUDGET_SETTING, Backoff, retry_transient


def test_transient_errors_are_retried_until_the_action_succeeds() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise SinkUnavailable("S3 is down")
        return "done"

    assert retry_transient(flaky, "reading the table", threading.Event(), timeout_s=30) == "done"
    assert len(calls) == 3


def test_past_the_budget_the_error_says_what_failed_and_which_setting_to_raise() -> None:
    def down() -> None:
        raise SinkUnavailable("connection refused")

    with pytest.raises(RetriesExhausted) as caught:
        retry_transient(down, "committing to orders", threading.Event(), timeout_s=0.5)

    error = caught.value
    assert isinstance(error, TerminalError)
    assert error.what == "committing to orders" and error.attempts >= 2
    message = str(error)
    assert "committing to orders" in message and "connection refused" in message and BUDGET_SETTING in message
    assert isinstance(error.__cause__, SinkUnavailable)


def test_terminal_errors_are_not_retried() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        retry_transient(bad, "x", threading.Event(), timeout_s=30)
    assert len(calls) == 1


def test_a_stop_request_ends_the_waiting_with_the_original_error() -> None:
    stop = threading.Event()
    stop.set()
    backoff = Backoff("committing", stop, timeout_s=600)
    with pytest.raises(SinkUnavailable, match="down"):
        backoff.wait(SinkUnavailable("down"))


def test_delays_double_up_to_the_maximum() -> None:
    backoff = Backoff("x", threading.Event(), timeout_s=600, first_delay_s=0.001, max_delay_s=0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        backoff.wait(SinkUnavailable("down"))
    assert delays == [0.001, 0.002, 0.004, 0.004]
