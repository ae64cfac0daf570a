//! What Postgres computes as DataFusion does.

use weft_core::remote::Capabilities;

/// Postgres's capabilities.
///
/// Decimals are in: `numeric` compares, adds, subtracts, multiplies and sums exactly, as
/// Decimal128 does; the planner keeps out what would round (division, `avg`, narrowing
/// casts), and the decoder fails on a value that does not fit the plan's type.
///
/// Kept out: `/` and `%` (Postgres fails on a float division by zero, DataFusion returns
/// infinity), `upper`/`lower` (locale-dependent case mapping), and text ordering unless the
/// database's collation orders by code point.
pub(crate) fn capabilities(binary_collation: bool) -> Capabilities {
    let mut caps = Capabilities::scan_only("postgres");
    caps.scalar_functions = ["abs", "coalesce", "nullif", "character_length", "length"]
        .into_iter()
        .map(String::from)
        .collect();
    caps.aggregate_functions = ["count", "sum", "min", "max", "avg"]
        .into_iter()
        .map(String::from)
        .collect();
    caps.joins = true;
    caps.semi_joins = true;
    caps.aggregates = true;
    caps.sort_and_limit = true;
    caps.case_sensitive_like = true;
    caps.date_comparisons = true;
    caps.timestamp_comparisons = true;
    caps.numeric_casts = true;
    caps.decimals = true;
    caps.binary_text_order = binary_collation;
    caps
}
