"""Prediction-log lines encoded in bulk (an ANSWERS record's rows) are the one-by-one lines."""

from __future__ import annotations

import binascii
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.observability import monitor_answers as answers
from service.observability import monitor_wire as wire
from service.observability.log_records import _b64_rows, encode_answers, encode_prediction


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.integers(0, 50), st.integers(0, 2**32 - 1))
def test_base64_of_every_row_at_once_is_each_rows_base64(rows: int, length: int, seed: int):
    data = np.random.default_rng(seed).integers(0, 256, (rows, length), dtype=np.uint8)
    got = _b64_rows(data)
    assert got.shape[0] == rows
    for row, encoded in zip(data, got, strict=True):
        assert encoded.tobytes() == binascii.b2a_base64(row.tobytes(), newline=False)


_IDS = st.one_of(
    st.text(max_size=12),  # quotes, backslashes, control characters, any script
    st.from_regex(r"[A-Za-z0-9_.:/-]{0,20}", fullmatch=True),  # the plain ids we generate
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(_IDS, st.integers(1, 3), st.booleans(), st.floats(0, 1e3)), min_size=1,
             max_size=12),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)  # fmt: skip
def test_an_answers_records_lines_are_byte_for_byte_the_one_by_one_lines(
    spec: list[tuple[str, int, bool, float]], seed: int, one_image_each: bool
):
    rng = np.random.default_rng(seed)
    rows: list[answers.Row] = []
    for i, (request_id, n, _, seconds) in enumerate(spec):
        n = 1 if one_image_each else n
        rows.append((
            wire.DRIFT | wire.LOG, 1.7e9 + i * 0.123456789, request_id,
            ("Predict", "ModelInfer")[i % 2], 1 + i % 3, seconds,
            rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.random((n, 10), dtype=np.float32),
        ))  # fmt: skip
    chosen = np.array([logged for _, _, logged, _ in spec])
    parts, size = answers.pack_answers(rows)
    data = b"".join(bytes(p) for p in parts)
    assert size == len(data)
    (record,), used = wire.decode(data)
    assert used == len(data) and isinstance(record, wire.Answers)
    got = encode_answers(record, chosen)
    want = b"".join(
        encode_prediction(t, rid, method, version, s, "OK", None, pixels, probabilities)
        for (_, t, rid, method, version, s, pixels, probabilities), logged in zip(
            rows, chosen, strict=True
        )
        if logged
    )
    assert got == want
    for line in got.splitlines():
        json.loads(line)
