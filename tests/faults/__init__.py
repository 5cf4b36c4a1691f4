"""Fault injection: a production-like stack of separate processes, mixed traffic with retries,
faults injected while it runs, and the invariants checked once the system has settled.

`loadtests/faults.py` runs it at length (`make faults`); `test_faults_short.py` runs a short
version of every fault inside `make test`."""
