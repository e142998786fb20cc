"""Local stand-ins for the three SMS providers, faithful to their wire formats (see each module)."""
