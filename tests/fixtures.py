"""Fixtures shared by several test folders beyond the real components in conftest."""
