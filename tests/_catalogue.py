"""The row types of the bad-input catalogues and the check each row gets.

A row is (id, fault, expected): ``fault(ctx)`` sets the fault up and runs
the code under test; ``expected`` is ``Raises(type, fragment)`` or
``Policy(check, doc)``, whose ``check(ctx, result)`` asserts the documented
behaviour.
"""

from dataclasses import dataclass
from typing import Callable

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
    """Run one row: the exception and its message, or the policy's check."""
    if isinstance(expected, Raises):
        with pytest.raises(expected.exc) as info:
            fault(ctx)
        assert expected.fragment in str(info.value), str(info.value)
    else:
        expected.check(ctx, fault(ctx))


def assert_catalogue(rows, minimum):
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) and len(ids) >= minimum
