"""The public API is a short, deliberate list: changing it is a decision, made here."""

from __future__ import annotations

import stream_etl


def test_exported_members() -> None:
    assert stream_etl.__all__ == [
        "JsonFormat",
        "RunContext",
        "RunSummary",
        "Stream",
        "StreamEtlError",
        "Topology",
        "__version__",
        "job_args",
        "run",
    ]


def test_every_exported_name_exists_and_belongs_to_the_package() -> None:
    for name in stream_etl.__all__:
        member = getattr(stream_etl, name)
        if name != "__version__":
            assert member.__module__.startswith("stream_etl."), name


def test_version_is_a_string() -> None:
    assert isinstance(stream_etl.__version__, str)
    assert stream_etl.__version__.count(".") == 2
