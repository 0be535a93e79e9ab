"""Alembic migrations of the central store's schema (`classink central migrate`)."""
