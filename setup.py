"""Builds the optional C extension connectors.kafka._native (everything else is in pyproject.toml).

It needs a C compiler and Python's headers; without them the install goes on and the Kafka
source reads through confluent-kafka's Python API (slower, same results).
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
        )
    ]
)
