"""Deprecated home of the shared input checks and output table (kept so old imports work).

Use `astro_deblend.stamps` (input), `astro_deblend.catalog` (the table) and `astro_deblend.flags` instead.
"""

from .catalog import build_table, table_to_pairs
from .conventions import ROLES
from .flags import Flag
from .stamps import per_stamp, validate_stamps

__all__ = []

FLAG_NOT_DETECTED = int(Flag.NOT_DETECTED)
FLAG_HOT_PASS = int(Flag.HOT_PASS)
FLAG_AMBIGUOUS = int(Flag.AMBIGUOUS)
FLAG_OUT_OF_DOMAIN = int(Flag.OUT_OF_DOMAIN)
FLAG_NOT_A_PAIR = int(Flag.NOT_A_PAIR)

_REEXPORTED = (build_table, table_to_pairs, ROLES, per_stamp, validate_stamps)
