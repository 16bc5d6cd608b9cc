"""Performance measurement: the configurations and timers behind `tools/bench.py`."""
