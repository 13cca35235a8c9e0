"""Fixtures shared by several test folders beyond the real components in conftest."""

from tests.budget_support import budget_workers  # noqa: F401
