"""MelaNet."""
