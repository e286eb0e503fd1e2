"""Brokkr running on this machine: PostgreSQL, the broker and agent processes, the stack.

`nox -s up` (`stack`), the benchmarks and the tests launch services from here.
"""
