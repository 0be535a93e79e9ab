"""Tutoring: learned teacher profiles, ranking, capacity-aware assignment and recorded sessions.

The library (catalog, profiles, ranking, assignment) works on numpy arrays and knows nothing about
the database; `models`, `service` and `api` put it behind central's tables and web app.
"""
