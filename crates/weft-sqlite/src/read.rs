//! SQLite rows into Arrow batches.
//!
//! The decoding follows datafusion-table-providers' `arrow_sql_gen::sqlite` (copyright the
//! Spice.ai OSS authors, Apache-2.0): each column's Arrow type comes from the plan's schema and
//! the storage class of its first value; integer columns accept integral REALs (SQLite
//! computes many expressions in REAL), float columns accept integers, text is read as text
//! and cast later. Two things differ, which is why Weft has its own copy:
//!
//! - every error SQLite reports while stepping is an error here; the crate's reader stops at
//!   the first one as if the rows had ended, so a runtime error (`integer overflow` in `sum()`
//!   or `abs()`, an interrupted statement) turned into a short or empty result;
//! - rows come in batches of [`BATCH_ROWS`], not all in one, and reading stops when nobody
//!   wants the next batch.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, Int8Builder, LargeStringBuilder, NullBuilder,
    RecordBatch, RecordBatchOptions, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_table_providers::sql::arrow_sql_gen::arrow::map_data_type_to_array_builder;
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Row, Rows};

/// Rows per batch.
pub(crate) const BATCH_ROWS: usize = 8192;

/// Reads `rows` in batches, handing each to `send`; stops early when `send` says no one
/// wants more. The column types are fixed by the first row, as the crate's reader does.
pub(crate) fn read_batches(
    mut rows: Rows<'_>,
    columns: usize,
    projected: &SchemaRef,
    mut send: impl FnMut(RecordBatch) -> bool,
) -> Result<(), String> {
    let Some(first) = rows.next().map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let (schema, types) = decoding_schema(first, columns, projected)?;
    let mut batch = Batch::new(&schema, &types);
    batch.push(first)?;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        batch.push(row)?;
        if batch.rows == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Batch::new(&schema, &types));
            if !send(full.finish()?) {
                return Ok(());
            }
        }
    }
    if batch.rows > 0 {
        send(batch.finish()?);
    }
    Ok(())
}

/// The Arrow type each column is decoded as, from the plan's type and the first value.
fn decoding_schema(
    first: &Row<'_>,
    columns: usize,
    projected: &SchemaRef,
) -> Result<(SchemaRef, Vec<DataType>), String> {
    let mut fields = Vec::with_capacity(columns);
    let mut types = Vec::with_capacity(columns);
    for i in 0..columns {
        let stored = first.get_ref(i).map_err(|e| e.to_string())?.data_type();
        let name = first
            .as_ref()
            .column_name(i)
            .map_err(|e| e.to_string())?
            .to_string();
        let wanted = projected
            .fields()
            .get(i)
            .map(|f| f.data_type().clone())
            .ok_or_else(|| {
                format!("SQLite returned more columns than the plan expects ({columns})")
            })?;
        let decoded = decoding_type(&wanted, stored);
        types.push(decoded.clone());
        fields.push(Field::new(name, decoded, true));
    }
    Ok((Arc::new(Schema::new(fields)), types))
}

/// What a value stored as `stored` is decoded as when the plan wants `wanted`.
fn decoding_type(wanted: &DataType, stored: Type) -> DataType {
    if stored == Type::Text {
        // Cast to the wanted type afterwards.
        return DataType::Utf8;
    }
    match wanted {
        DataType::Null => DataType::Null,
        DataType::Int8 => DataType::Int8,
        DataType::Int16 => DataType::Int16,
        DataType::Int32 => DataType::Int32,
        DataType::Int64 => DataType::Int64,
        DataType::UInt8 => DataType::UInt8,
        DataType::UInt16 => DataType::UInt16,
        DataType::UInt32 => DataType::UInt32,
        DataType::UInt64 => DataType::UInt64,
        DataType::Boolean => DataType::Boolean,
        DataType::Float32 => DataType::Float32,
        // Float16 has no decoder: read as Float64 and cast.
        DataType::Float16 | DataType::Float64 => DataType::Float64,
        DataType::Utf8 => DataType::Utf8,
        DataType::LargeUtf8 => DataType::LargeUtf8,
        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => DataType::Binary,
        DataType::Decimal128(..) | DataType::Decimal256(..) => DataType::Float64,
        DataType::Duration(_) => DataType::Int64,
        // Dates, times, timestamps, nested types: text, cast afterwards.
        _ => DataType::Utf8,
    }
}

/// The batch being filled.
struct Batch<'a> {
    schema: &'a SchemaRef,
    types: &'a [DataType],
    builders: Vec<Box<dyn ArrayBuilder>>,
    rows: usize,
}

impl<'a> Batch<'a> {
    fn new(schema: &'a SchemaRef, types: &'a [DataType]) -> Self {
        Self {
            schema,
            types,
            builders: types.iter().map(map_data_type_to_array_builder).collect(),
            rows: 0,
        }
    }

    fn push(&mut self, row: &Row<'_>) -> Result<(), String> {
        for (i, (data_type, builder)) in self.types.iter().zip(&mut self.builders).enumerate() {
            append(builder.as_any_mut(), data_type, row, i).map_err(|e| {
                let column = row.as_ref().column_name(i).unwrap_or("?");
                format!("column `{column}`: {e}")
            })?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, String> {
        let columns = self
            .builders
            .iter_mut()
            .map(|b| b.finish())
            .collect::<Vec<ArrayRef>>();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        RecordBatch::try_new_with_options(Arc::clone(self.schema), columns, &options)
            .map_err(|e| e.to_string())
    }
}

/// `builder` of `data_type` as its concrete type.
fn builder<T: 'static>(builder: &mut dyn std::any::Any) -> Result<&mut T, String> {
    builder
        .downcast_mut::<T>()
        .ok_or_else(|| "internal error: the column's builder has another type".to_string())
}

/// An integer, from an INTEGER or an integral REAL; a fractional or out-of-range value is
/// an error, never truncated.
fn integer<T: TryFrom<i64>>(row: &Row<'_>, i: usize) -> Result<Option<T>, String> {
    let value = match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Null => return Ok(None),
        ValueRef::Real(real) => {
            const LOWEST: f64 = -9_223_372_036_854_775_808.0;
            const PAST_HIGHEST: f64 = 9_223_372_036_854_775_808.0;
            if real.fract() != 0.0 || !(LOWEST..PAST_HIGHEST).contains(&real) {
                return Err(format!(
                    "the REAL value {real} is not an integer (or is out of range)"
                ));
            }
            #[allow(clippy::cast_possible_truncation)]
            let integral = real as i64;
            integral
        }
        _ => row.get::<_, i64>(i).map_err(|e| e.to_string())?,
    };
    T::try_from(value)
        .map(Some)
        .map_err(|_| format!("the value {value} is out of range"))
}

fn value<T: rusqlite::types::FromSql>(row: &Row<'_>, i: usize) -> Result<Option<T>, String> {
    row.get::<_, Option<T>>(i).map_err(|e| e.to_string())
}

macro_rules! append_with {
    ($any:expr, $builder:ty, $value:expr) => {{
        let builder = builder::<$builder>($any)?;
        match $value {
            Some(v) => builder.append_value(v),
            None => builder.append_null(),
        }
    }};
}

fn append(
    any: &mut dyn std::any::Any,
    data_type: &DataType,
    row: &Row<'_>,
    i: usize,
) -> Result<(), String> {
    match data_type {
        DataType::Null => builder::<NullBuilder>(any)?.append_null(),
        DataType::Int8 => append_with!(any, Int8Builder, integer::<i8>(row, i)?),
        DataType::Int16 => append_with!(any, Int16Builder, integer::<i16>(row, i)?),
        DataType::Int32 => append_with!(any, Int32Builder, integer::<i32>(row, i)?),
        DataType::Int64 => append_with!(any, Int64Builder, integer::<i64>(row, i)?),
        DataType::UInt8 => append_with!(any, UInt8Builder, integer::<u8>(row, i)?),
        DataType::UInt16 => append_with!(any, UInt16Builder, integer::<u16>(row, i)?),
        DataType::UInt32 => append_with!(any, UInt32Builder, integer::<u32>(row, i)?),
        DataType::UInt64 => append_with!(any, UInt64Builder, integer::<u64>(row, i)?),
        DataType::Boolean => append_with!(any, BooleanBuilder, value::<bool>(row, i)?),
        DataType::Float32 => append_with!(any, Float32Builder, value::<f32>(row, i)?),
        DataType::Float64 => append_with!(any, Float64Builder, value::<f64>(row, i)?),
        DataType::Utf8 => append_with!(any, StringBuilder, value::<String>(row, i)?),
        DataType::LargeUtf8 => append_with!(any, LargeStringBuilder, value::<String>(row, i)?),
        DataType::Binary => append_with!(any, BinaryBuilder, value::<Vec<u8>>(row, i)?),
        other => return Err(format!("no decoder for {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn read(sql: &str, types: &[DataType]) -> Result<Vec<RecordBatch>, String> {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE t(i INTEGER, r REAL, s TEXT);
                 INSERT INTO t VALUES (9223372036854775807, 1.5, 'a'), (1, 2.0, NULL);",
            )
            .unwrap();
        let projected = Arc::new(Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let mut statement = connection.prepare(sql).unwrap();
        let columns = statement.column_count();
        let mut batches = Vec::new();
        read_batches(statement.raw_query(), columns, &projected, |b| {
            batches.push(b);
            true
        })?;
        Ok(batches)
    }

    #[test]
    fn an_error_while_stepping_is_an_error_not_the_end_of_the_rows() {
        let error = read("SELECT sum(i) FROM t", &[DataType::Int64]).unwrap_err();
        assert!(error.contains("integer overflow"), "{error}");
        // The first row is fine, the second overflows in abs().
        let error = read(
            "SELECT abs(i - 9223372036854775807 - 2) FROM t ORDER BY i DESC",
            &[DataType::Int64],
        )
        .unwrap_err();
        assert!(error.contains("integer overflow"), "{error}");
    }

    #[test]
    fn decodes_as_the_crate_does_and_refuses_to_truncate() {
        let batches = read(
            "SELECT i, r, s, round(r) FROM t ORDER BY i",
            &[
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Int64,
            ],
        )
        .unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        assert!(
            text.contains("| 1                   | 2.0 |   | 2 "),
            "{text}"
        );
        let error = read("SELECT r FROM t", &[DataType::Int64]).unwrap_err();
        assert!(error.contains("1.5 is not an integer"), "{error}");
        assert!(read("SELECT i FROM t WHERE 0", &[DataType::Int64])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rows_come_in_batches_and_reading_stops_when_nobody_wants_more() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let projected = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT x FROM n LIMIT 20000";
        let mut statement = connection.prepare(sql).unwrap();
        let mut sizes = Vec::new();
        read_batches(statement.raw_query(), 1, &projected, |b| {
            sizes.push(b.num_rows());
            true
        })
        .unwrap();
        assert_eq!(sizes, [BATCH_ROWS, BATCH_ROWS, 20000 - 2 * BATCH_ROWS]);
        let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n";
        let mut statement = connection.prepare(sql).unwrap();
        let mut batches = 0;
        read_batches(statement.raw_query(), 1, &projected, |_| {
            batches += 1;
            batches < 3
        })
        .unwrap();
        assert_eq!(batches, 3);
    }
}
