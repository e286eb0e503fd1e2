"""Benchmarks: the broker, the agent, image rebuilds and the local cluster."""
