"""Foundations every other wing builds on.

Paths and the cache, loopback ports and polling, processes and their /proc stats,
git, the `Log` progress callback (log.py), the Debian packages a session needs, and
the pinned CLI toolchain. Nothing here imports another wing.
"""
