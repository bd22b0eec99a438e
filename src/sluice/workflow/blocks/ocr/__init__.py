"""Versions of this block: v1.py."""
