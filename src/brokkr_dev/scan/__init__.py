"""Security scanning: our thin Trivy wrapper, Checkov, and vulnerability sources.

Nothing here may fail open. Every scan reports how many checks it ran; a scan that
ran none, a chart that did not render, or a vulnerability source that could not be
reached is reported as such (docs/security.md), never as "no findings".
"""
