"""`make bench-peers`: Quix Streams, Bytewax, Faust and Pathway on the engine's benchmark
workload, each in its own virtualenv (see README.md and suite.py)."""
