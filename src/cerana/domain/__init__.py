"""Entities, enums and validation rules. Nothing here performs I/O."""
