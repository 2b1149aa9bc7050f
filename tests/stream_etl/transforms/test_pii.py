"""mask, hash, redact: exact output, nulls, unicode, non-string columns."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.transforms import Hash, Mask, Redact
from tests.stream_etl.transforms.helpers import assert_table, run, table

PEOPLE = table(
    {
        "card": pa.array(["4111111111111111", None, "12", "çà漢字ü"], pa.string()),
        "phone": pa.array([4930123, 0, None, 7], pa.int64()),
        "note": pa.array(["mail a@b.de now", None, "x", "c.d@e.org, f@g.com"], pa.string()),
    }
)


def test_mask_hides_all_characters_or_all_but_the_last_ones() -> None:
    out, _ = run(Mask(["card"], keep_last=4), PEOPLE)
    assert out is not None
    assert out["card"].to_pylist() == ["************1111", None, "12", "*à漢字ü"]

    out, _ = run(Mask(["card", "phone"], char="#"), PEOPLE)
    expected = PEOPLE.set_column(0, "card", pa.array(["#" * 16, None, "##", "#####"]))
    expected = expected.set_column(1, "phone", pa.array(["#######", "#", None, "#"]))
    assert_table(out, expected)


def test_hash_is_salted_hex_sha256_of_the_text() -> None:
    out, _ = run(Hash(["card", "phone"], salt="pepper"), PEOPLE)

    def sha(text: str | None) -> str | None:
        return hashlib.sha256(f"pepper{text}".encode()).hexdigest() if text is not None else None

    expected = PEOPLE.set_column(0, "card", pa.array([sha(v) for v in ["4111111111111111", None, "12", "çà漢字ü"]]))
    expected = expected.set_column(1, "phone", pa.array([sha(v) for v in ["4930123", "0", None, "7"]]))
    assert_table(out, expected)


def test_redact_replaces_every_match() -> None:
    out, _ = run(Redact(["note"], pattern=r"[\w.+-]+@[\w-]+\.[\w.]+", replacement="<email>"), PEOPLE)

    assert_table(out, PEOPLE.set_column(2, "note", pa.array(["mail <email> now", None, "x", "<email>, <email>"])))


def test_empty_batches_keep_a_string_column() -> None:
    for step in (Mask(["phone"]), Hash(["phone"]), Redact(["phone"], pattern="1")):
        out, _ = run(step, PEOPLE.slice(0, 0))
        assert out is not None and out.num_rows == 0 and out.schema.field("phone").type == pa.string()


def test_bad_configuration_fails_fast() -> None:
    with pytest.raises(ConfigurationError):
        Mask([])
    with pytest.raises(ConfigurationError):
        Mask(["a"], char="**")
    with pytest.raises(ConfigurationError):
        Redact(["a"], pattern="(")
    with pytest.raises(ConfigurationError, match="RE2"):
        run(Redact(["note"], pattern=r"(?<=a)b"), PEOPLE)
    with pytest.raises(ConfigurationError, match="no column 'nope'"):
        run(Hash(["nope"]), PEOPLE)
