"""The school-facing side of central: rosters, results with item statistics, review decisions,
xAPI export and the dashboard pages."""
