"""Clip cache: every training clip decoded once, in order, at the model's geometry (`cache-clips`)."""
