//! What a result costs on the wire, and in the server's memory.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::parquet::arrow::ArrowWriter;
use futures::TryStreamExt as _;

use crate::common::{self, login, Server};

/// Writes `rows` rows of (id, a 100-odd character string) to a Parquet file.
fn write_strings(path: &std::path::Path, rows: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
    let chunk = 50_000;
    for start in (0..rows).step_by(chunk as usize) {
        let ids: Vec<i64> = (start..(start + chunk).min(rows)).collect();
        let strings: Vec<String> = ids
            .iter()
            .map(|i| format!("{i:08}-{}", "lorem ipsum dolor sit amet ".repeat(4)))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(strings)),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn string_results_cost_their_size_on_the_wire() {
    let dir = common::scratch();
    write_strings(&dir.path().join("strings.parquet"), 400_000);
    let config = format!(
        "[[sources]]\nname = \"lake\"\nkind = \"parquet\"\nurl = \"{}\"\n\
         [sources.tables]\nstrings = \"strings.parquet\"\n\n\
         [[users]]\nname = \"u\"\npassword_hash = \"{}\"\n",
        dir.path().display(),
        common::hash_password("p")
    );
    let server = Server::with_config(&config, &[]);
    let mut client = login(&server.url(), "u", "p").await;

    // A filter keeps every third row: DataFusion's string views then point into buffers that
    // hold all the rows.
    let sql = "SELECT id, s FROM lake.public.strings WHERE id % 3 = 0";
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut raw = client.inner().clone();
    let mut request = tonic::Request::new(ticket);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", client.token().unwrap())
            .parse()
            .unwrap(),
    );
    let messages: Vec<arrow_flight::FlightData> = raw
        .do_get(request)
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    let wire: usize = messages
        .iter()
        .map(|m| m.data_header.len() + m.data_body.len() + m.app_metadata.len())
        .sum();
    let batches: Vec<RecordBatch> =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(futures::stream::iter(
            messages.into_iter().map(Ok),
        ))
        .try_collect()
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 133_334);

    // The same data, written compactly as one Arrow IPC stream.
    let schema = batches[0].schema();
    let compact = concat_batches(&schema, &batches).unwrap();
    let mut ipc = Vec::new();
    let mut writer = StreamWriter::try_new(&mut ipc, &schema).unwrap();
    writer.write(&compact).unwrap();
    writer.finish().unwrap();
    drop(writer);
    let ratio = wire as f64 / ipc.len() as f64;
    eprintln!(
        "{wire} bytes on the wire, {} bytes of compact IPC: {ratio:.3}x",
        ipc.len()
    );
    assert!(
        ratio <= 1.2,
        "{wire} bytes on the wire for {} bytes of compact IPC ({ratio:.2}x)",
        ipc.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn millions_of_rows_stream_in_bounded_memory() {
    let server = Server::demo();
    let mut client = login(&server.url(), "demo", "demo").await;
    let rows: i64 = 3_000_000;
    let sql = format!(
        "SELECT value AS id, concat('row-', CAST(value AS VARCHAR), '-', repeat('x', 80)) AS s \
         FROM range({rows})"
    );
    let info = client.execute(sql, None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = client.do_get(ticket).await.unwrap();
    let (mut seen, mut bytes) = (0usize, 0usize);
    while let Some(batch) = stream.try_next().await.unwrap() {
        seen += batch.num_rows();
        bytes += batch.get_array_memory_size();
    }
    assert_eq!(seen as i64, rows);
    let peak = server.peak_rss();
    eprintln!("{seen} rows, {bytes} bytes of result; server peak RSS {peak} bytes");
    // The result is about 300 MB; a server that collected it first would hold all of it.
    assert!(bytes > 250_000_000, "the result was only {bytes} bytes");
    assert!(
        peak < (bytes / 3) as u64,
        "the server peaked at {peak} bytes for a {bytes}-byte result"
    );
}
