"""Masking is linear in the text: 4x the text costs about 4x the time, never the 16x of
the quadratic regex that once froze a worker for 84 s on one long task name."""

from __future__ import annotations

import timeit

import pytest

from service.redaction import mask_text

KEYS = ("password", "token", "secret", "authorization", "api_key")
# The hostile shapes: long runs of scheme characters, of a sensitive word, of quotes and of
# keys without values, each of which made a backtracking regex quadratic.
SHAPES = {
    "letters": "a",
    "schemes": "a://",
    "words": "password",
    "quotes": "'",
    "keys": "'password': ",
    "escapes": "\\'",
}
BASE_CHARS = 64_000
# Linear: ~4; quadratic: ~16. The margin absorbs a noisy shared machine.
MAX_RATIO = 8.0


def _best(text: str) -> float:
    return min(timeit.repeat(lambda: mask_text(text, KEYS, limit=len(text)), number=3, repeat=5))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_masking_scales_linearly(shape: str, benchmark: object) -> None:
    unit = SHAPES[shape]
    small = unit * (BASE_CHARS // len(unit))
    large = unit * (4 * BASE_CHARS // len(unit))
    ratio = _best(large) / _best(small)
    benchmark(mask_text, large, KEYS, len(large))  # type: ignore[operator]
    assert ratio < MAX_RATIO, f"{shape}: 4x text took {ratio:.1f}x the time"
