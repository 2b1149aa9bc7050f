"""`make bench-peers`: Quix Streams, Bytewax, Faust and Pathway (to Delta, and with Pathway's
native CSV writer) on the engine's benchmark workload, each in its own virtualenv (see
README.md and suite.py)."""
