"""The Brokkr broker service."""
