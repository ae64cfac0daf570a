//! What Postgres computes as DataFusion does.

use weft_core::remote::Capabilities;

/// Postgres's capabilities.
///
/// Kept out: `/` and `%` (Postgres fails on a float division by zero, DataFusion returns
/// infinity), decimals (numeric has other precision and scale rules than Decimal128),
/// `upper`/`lower` (locale-dependent case mapping), semi and anti joins (DataFusion's
/// unparser drops the subquery side's filters), and text ordering unless the database's
/// collation orders by code point.
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
    caps.aggregates = true;
    caps.sort_and_limit = true;
    caps.case_sensitive_like = true;
    caps.date_comparisons = true;
    caps.timestamp_comparisons = true;
    caps.numeric_casts = true;
    caps.binary_text_order = binary_collation;
    caps
}
