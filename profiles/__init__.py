"""Progressive profiles: templates, the rule grammar, and windowed aggregation."""
