//! Postgres column types to Arrow types, decided once per column from the catalog.
//!
//! The mapping keeps values exact: integers and floats by width, `numeric(p, s)` as a decimal
//! of the same precision and scale (128-bit up to 38 digits, 256-bit up to 76), times and
//! timestamps in microseconds (Postgres's own resolution, which also covers its whole range
//! of years), text-like types (text, varchar, char, enums, uuid, json, jsonb) as `Utf8`, and
//! one-dimensional arrays of any of these as `List`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use tokio_postgres::types::Type;
use weft_core::remote::{ComparesAs, COLLATION, COMPARES_AS};

/// The Arrow precision and scale of a `numeric` declared without precision.
///
/// Such a column has no fixed scale in Postgres; Arrow needs one. A value that does not fit
/// is an error naming the column, never a rounded value.
pub(crate) const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 20);

/// A column as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct PgColumn {
    pub(crate) name: String,
    /// `format_type()`, for messages: `numeric(10,2)`, `mood`, `integer[]`.
    pub(crate) type_name: String,
    /// The type's OID, a domain's base type resolved.
    pub(crate) oid: u32,
    /// `pg_type.typtype` of that type: `b` base, `e` enum, `c` composite, ...
    pub(crate) typtype: u8,
    /// The type modifier (`numeric` precision and scale), -1 when none.
    pub(crate) typmod: i32,
    /// An array's element type: its OID and typtype.
    pub(crate) element: Option<(u32, u8)>,
    pub(crate) nullable: bool,
    /// The column's own collation, when it is not the database's default.
    pub(crate) collation: Option<Collation>,
}

/// A collation a column was given (`text COLLATE "en-x-icu"`), or that a view's column
/// inherits.
#[derive(Debug, Clone)]
pub(crate) struct Collation {
    pub(crate) name: String,
    /// Equal values have equal bytes (`pg_collation.collisdeterministic`); a
    /// nondeterministic collation may make `'a' = 'A'` true.
    pub(crate) deterministic: bool,
}

impl PgColumn {
    /// The column as an Arrow field, or why it has none.
    pub(crate) fn field(&self) -> Result<Field, String> {
        let data_type = match self.element {
            Some((oid, typtype)) => {
                let item = scalar(oid, typtype, self.typmod).ok_or_else(|| self.unsupported())?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            None => {
                scalar(self.oid, self.typtype, self.typmod).ok_or_else(|| self.unsupported())?
            }
        };
        let mut metadata =
            std::collections::HashMap::from([("source_type".to_string(), self.type_name.clone())]);
        if let Some(kind) = self.compares_as() {
            metadata.insert(COMPARES_AS.to_string(), kind.as_str().to_string());
        }
        if let Some(collation) = &self.collation {
            metadata.insert(COLLATION.to_string(), collation.name.clone());
        }
        Ok(Field::new(&self.name, data_type, self.nullable).with_metadata(metadata))
    }

    /// How Postgres compares the column's values, when not as the text they reach
    /// DataFusion as (arrays are never compared in pushed SQL).
    ///
    /// A column with its own collation orders by that collation's rules, and comparing it
    /// with a column of another collation is an error in Postgres ("could not determine
    /// which collation to use"): it is compared only with columns of the same type and
    /// collation, and not at all when the collation is nondeterministic.
    fn compares_as(&self) -> Option<ComparesAs> {
        if self.element.is_some() {
            return None;
        }
        match &self.collation {
            Some(c) if !c.deterministic => return Some(ComparesAs::Opaque),
            Some(_) => return Some(ComparesAs::Keys),
            None => {}
        }
        if self.typtype == b'e' {
            return Some(ComparesAs::Keys);
        }
        match Type::from_oid(self.oid)? {
            Type::BPCHAR | Type::UUID => Some(ComparesAs::Keys),
            Type::JSON | Type::JSONB => Some(ComparesAs::Opaque),
            _ => None,
        }
    }

    fn unsupported(&self) -> String {
        format!(
            "column `{}` has the type `{}`, which has no Arrow mapping",
            self.name, self.type_name
        )
    }
}

fn scalar(oid: u32, typtype: u8, typmod: i32) -> Option<DataType> {
    if typtype == b'e' {
        return Some(DataType::Utf8);
    }
    let ty = Type::from_oid(oid)?;
    Some(match ty {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::OID => DataType::UInt32,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => numeric_type(typmod)?,
        Type::BOOL => DataType::Boolean,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::CHAR
        | Type::UUID
        | Type::JSON
        | Type::JSONB => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => return None,
    })
}

/// `numeric(p, s)` from its type modifier.
fn numeric_type(typmod: i32) -> Option<DataType> {
    if typmod < 4 {
        let (p, s) = UNCONSTRAINED_NUMERIC;
        return Some(DataType::Decimal128(p, s));
    }
    let bits = typmod - 4;
    let precision = u8::try_from((bits >> 16) & 0xffff).ok()?;
    // Postgres 15+ allows a negative scale, stored as 11 signed bits.
    let scale = i8::try_from(((bits & 0x7ff) ^ 1024) - 1024).ok()?;
    match precision {
        1..=38 => Some(DataType::Decimal128(precision, scale)),
        39..=76 => Some(DataType::Decimal256(precision, scale)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typmod(precision: i32, scale: i32) -> i32 {
        ((precision << 16) | (scale & 0x7ff)) + 4
    }

    #[test]
    fn numeric_keeps_precision_and_scale() {
        assert_eq!(numeric_type(-1), Some(DataType::Decimal128(38, 20)));
        assert_eq!(
            numeric_type(typmod(10, 2)),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(
            numeric_type(typmod(50, 10)),
            Some(DataType::Decimal256(50, 10))
        );
        assert_eq!(
            numeric_type(typmod(5, -2)),
            Some(DataType::Decimal128(5, -2))
        );
        assert_eq!(numeric_type(typmod(100, 0)), None);
    }
}
