"""Brokkr running on this machine: PostgreSQL, the service launchers, the stack.

`nox -s up` (`stack`), the benchmarks and the tests launch services from here.
"""
