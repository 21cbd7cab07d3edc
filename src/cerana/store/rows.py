"""The shape of a database row as the layers above the store see it."""

from collections.abc import Mapping
from typing import Any, TypeAlias

# A row read with ``.mappings()`` or a dict of column values about to be
# written: both are read by column name.
Row: TypeAlias = Mapping[Any, Any]
