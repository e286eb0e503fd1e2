"""The Brokkr agent service."""
