"""`make bench`: 1M records Kafka -> Delta through the engine, against a bare consumer.

Run ``python -m bench.run --help``; see bench/README.md. This package imports
nothing heavy at import time: ``bench.raw_consumer`` runs as a fresh process and
its start-up cost is part of what it measures.
"""
