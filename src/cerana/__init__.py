"""Cerana: a security incident response platform speaking TheHive 3's API."""

__version__ = "0.1.0"
