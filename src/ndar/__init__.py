"""ndar: naturalistic driving action recognition, from raw in-cabin videos to a scored submission."""

__version__ = "0.1.0"
