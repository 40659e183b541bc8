"""Pieces every reader fuzz test shares: the damage a file can take, and the warnings a reader logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hypothesis import strategies as st

DAMAGE = ("random", "truncate", "non_finite", "empty")


@st.composite
def damaged(draw: st.DrawFn, valid: bytes, *, non_finite: Callable[[st.DrawFn, bytes], bytes]) -> bytes:
    """``valid`` after one kind of damage: random bytes, a truncation, an empty file, or a value replaced by a
    non-finite spelling (``non_finite(draw, valid)`` knows where values sit in this format)."""
    kind = draw(st.sampled_from(DAMAGE))
    if kind == "random":
        return draw(st.binary(max_size=120))
    if kind == "truncate":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "empty":
        return b""
    return non_finite(draw, valid)


@contextmanager
def logged_messages(logger: str) -> Iterator[list[str]]:
    """The messages ``logger`` emits inside the block (a reader's skip counts are checked against them)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(logger).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(logger).removeHandler(handler)
