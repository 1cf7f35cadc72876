"""The row types of the bad-input catalogues and the check each row gets.

A row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is ``Raises(type, fragment)`` or
``Policy(check, doc)``, whose ``check(ctx, result)`` asserts the documented
behaviour.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class Raises:
    exc: type
    fragment: str


@dataclass
class Policy:
    check: Callable
    doc: str = ""


def check_row(fault, expected, ctx):
    """Run one row: the exception and its message, or the policy's check.

    ``expected`` may also be written as an ``(exception type, fragment)``
    pair, or as a plain callable checking the result (the older catalogues'
    spelling).
    """
    if isinstance(expected, tuple):
        expected = Raises(*expected)
    if isinstance(expected, Raises):
        with pytest.raises(expected.exc) as info:
            fault(ctx)
        assert expected.fragment in str(info.value), f"{expected.fragment!r} not in {str(info.value)!r}"
    elif isinstance(expected, Policy):
        expected.check(ctx, fault(ctx))
    else:
        expected(fault(ctx))


def assert_catalogue(rows, minimum):
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) and len(ids) >= minimum


def returns_within(call, seconds=20):
    """``call()``'s result or exception, or a test failure if it has not returned after `seconds`.

    The call runs in a daemon thread, so a regression that hangs (a read
    that never ends, such as a FIFO or /dev/zero) fails its row instead of
    hanging the whole run.
    """
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: it hangs")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
