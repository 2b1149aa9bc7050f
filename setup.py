"""Builds the optional C extensions (everything else is in pyproject.toml).

connectors.kafka._native reads Kafka records into contiguous buffers; stream_etl._flatjson parses
flat JSON objects straight into Arrow buffers. They need a C compiler and Python's headers;
without them the install goes on: the Kafka source reads through confluent-kafka's Python API and
JSON goes through Arrow's reader (slower, same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "connectors.kafka._native",
            ["connectors/kafka/_native.c"],
            libraries=["dl"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        ),
        Extension(
            "stream_etl._flatjson",
            ["stream_etl/_flatjson.c"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        ),
    ]
)
