"""Results: the cell documents a run writes (:mod:`.store`), their typed rows (:mod:`.schema`), the one table
built from them and aggregated once (:mod:`.table`), and the statistics every number is reported with
(:mod:`.stats`)."""

from .schema import CSV_COLUMNS, Row, evaluation_record, flags_from_str, flags_to_str, rows_of
from .stats import Difference, Estimate, SeedResult, difference, estimate, published_estimate
from .table import BACKEND_PREFERENCE, EvalKey, Results

__all__ = [
    "BACKEND_PREFERENCE", "CSV_COLUMNS", "Difference", "Estimate", "EvalKey", "Results", "Row", "SeedResult",
    "difference", "estimate", "evaluation_record", "flags_from_str", "flags_to_str", "published_estimate", "rows_of",
]
