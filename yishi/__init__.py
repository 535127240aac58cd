"""Yishi (议事): a deliberation assistant for residential communities."""

__version__ = "0.1.0"
