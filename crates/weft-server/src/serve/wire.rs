//! What a result looks like on the wire. DataFusion produces `Utf8View` and `BinaryView`
//! arrays whose views share large buffers between batches; Flight's IPC encoding sends every
//! buffer a batch references whole (arrow-rs#7185), so a filtered or sliced string column can
//! cost many times its size. Results are sent as `Utf8` and `Binary` instead, which are also
//! what every Flight SQL client (JDBC included) reads; the copy holds only the values.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::error::Result;

/// The type a column of `data_type` is sent as.
pub(crate) fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(wire_field(f)),
        DataType::LargeList(f) => DataType::LargeList(wire_field(f)),
        DataType::ListView(f) => DataType::List(wire_field(f)),
        DataType::LargeListView(f) => DataType::LargeList(wire_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(wire_field(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(wire_field).collect::<Fields>())
        }
        DataType::Map(f, sorted) => DataType::Map(wire_field(f), *sorted),
        DataType::Dictionary(key, value) => {
            DataType::Dictionary(key.clone(), Box::new(wire_type(value)))
        }
        other => other.clone(),
    }
}

fn wire_field(field: &FieldRef) -> FieldRef {
    let data_type = wire_type(field.data_type());
    if &data_type == field.data_type() {
        Arc::clone(field)
    } else {
        Arc::new(Field::clone(field).with_data_type(data_type))
    }
}

/// The schema a result of `schema` is sent with.
pub(crate) fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema.fields().iter().map(wire_field).collect::<Fields>(),
        schema.metadata().clone(),
    ))
}

/// Converts a batch to `schema` (its [`wire_schema`]), casting only the columns that change.
pub(crate) fn to_wire(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref().fields() == schema.fields() {
        return Ok(batch);
    }
    weft_core::cast_columns(batch.columns().to_vec(), schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringViewArray};

    #[test]
    fn views_become_compact_offsets() {
        let long = "x".repeat(100);
        let values: StringViewArray = (0..1000).map(|i| Some(format!("{long}{i}"))).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let slice = batch.slice(10, 5);
        let wire = wire_schema(&schema);
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        let sent = to_wire(slice, &wire).unwrap();
        assert_eq!(sent.num_rows(), 5);
        // Only the five values are kept, not the shared buffer of all thousand.
        assert!(sent.column(0).get_buffer_memory_size() < 5 * 200);
    }
}
