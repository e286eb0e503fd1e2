"""Automation for Brokkr maintainers and CI: tools, clusters, images, charts, releases.

Everything here is plain importable Python so that `noxfile.py` and `tasks.py` stay
thin and the logic is unit-tested like the services.
"""
