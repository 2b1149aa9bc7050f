"""Sources and sinks: one folder per technology, each with config, source or sink, errors."""
