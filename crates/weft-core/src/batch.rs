//! Giving a batch the exact schema a plan expects.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};

/// Builds a batch of `schema` from `columns`, casting each column whose type differs. A value
/// the target type cannot hold is an error naming the column, never a silent NULL.
pub fn cast_columns(columns: Vec<ArrayRef>, schema: &SchemaRef) -> Result<RecordBatch> {
    if columns.len() != schema.fields().len() {
        return Err(DataFusionError::Execution(format!(
            "{} columns arrived where {} were expected",
            columns.len(),
            schema.fields().len()
        )));
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                return Ok(column);
            }
            cast_with_options(&column, field.data_type(), &options).map_err(|e| {
                DataFusionError::Execution(format!(
                    "column `{}`: cannot read {} as {}: {e}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
