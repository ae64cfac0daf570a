//! Postgres types to Arrow, each by a round trip from a real table: NULLs, extremes, unicode.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use integration_tests::pg;
use weft_core::config::UnsupportedTypes;
use weft_planner::WeftContext;
use weft_postgres::{PostgresOptions, PostgresSource};

/// A fresh database with `setup` run in it, opened as the source `pg`.
async fn source_with(setup: &str, unsupported: UnsupportedTypes) -> weft_core::Result<WeftContext> {
    let server = pg::server();
    let database = server.create_database("types").await;
    server.execute(&database, setup).await.unwrap();
    let mut options = PostgresOptions::from_url(&server.url(&database)).unwrap();
    options.unsupported_types = unsupported;
    let source = Arc::new(PostgresSource::open("pg", options).await?);
    let mut weft = WeftContext::new();
    weft.register(source).unwrap();
    Ok(weft)
}

/// The result's column types and its values as Arrow displays them (floats unrounded).
async fn query(weft: &WeftContext, sql: &str) -> (Vec<DataType>, Vec<Vec<String>>) {
    let df = weft.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let types = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    (types, out)
}

async fn query_error(weft: &WeftContext, sql: &str) -> String {
    match weft.sql(sql).await {
        Ok(df) => match df.collect().await {
            Ok(_) => panic!("{sql} succeeded"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

const ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'héureux 😀');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE t (
  id int PRIMARY KEY,
  i16 smallint, i32 integer, i64 bigint, f32 real, f64 double precision,
  num numeric, num_ps numeric(10,2), num_p numeric(5),
  b boolean, txt text, vc varchar(10), ch char(5), by bytea,
  d date, tm time, ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb,
  a_int integer[], a_text text[], a_f64 double precision[], a_bool boolean[], m mood,
  a_num numeric(6,2)[], a_date date[], a_mood mood[], dom positive
);
INSERT INTO t VALUES
 (1, -32768, -2147483648, -9223372036854775808, -3.4028235e38, -1.7976931348623157e308,
  -123456789012345678.12345678901234567890, -99999999.99, -99999, false, '', '', '', '\x00',
  '0001-01-01', '00:00:00', '1900-01-01 00:00:00', '1900-01-01 00:00:00+00', '-178000000 years',
  '00000000-0000-0000-0000-000000000000', '{}', '{}', '{}', '{}', '{}', '{}', 'sad',
  '{}', '{}', '{}', 1),
 (2, 32767, 2147483647, 9223372036854775807, 3.4028235e38, 1.7976931348623157e308,
  123456789012345678.12345678901234567890, 99999999.99, 99999, true, 'héllo wörld 日本語 🎉',
  'ünïcødé 🎉', 'ab', '\xdeadbeef', '9999-12-31', '23:59:59.999999', '2200-12-31 23:59:59.999999',
  '2200-12-31 23:59:59.999999+05:30', '1 year 2 mons 3 days 04:05:06.789',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"k": [1, "ü", null]}', '{"k": [1, "ü", null]}',
  '{1,NULL,-2147483648}', '{"a","","日本",NULL}', '{1.5,NULL,-0}', '{true,false,NULL}',
  'héureux 😀', '{1.25,NULL,-9999.99}', '{2024-02-29,NULL}', '{ok,NULL,"héureux 😀"}', 2147483647),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL),
 (4, 0, 0, 0, 'NaN', '-Infinity', 0.1, 0.01, 0, NULL, 'x', 'x', 'x', '', '2000-02-29', '12:00',
  '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '-1 day', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'null', 'null', '{7}', '{NULL}', '{NaN,Infinity}', '{NULL}', NULL, '{0}', '{}', '{}', NULL);
"#;

#[tokio::test]
async fn every_type_round_trips_with_nulls_extremes_and_unicode() {
    let weft = source_with(ALL_TYPES, UnsupportedTypes::Error)
        .await
        .unwrap();
    let (types, got) = query(&weft, "SELECT * FROM pg.public.t ORDER BY id").await;
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    assert_eq!(
        types,
        [
            DataType::Int32,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(38, 20),
            DataType::Decimal128(10, 2),
            DataType::Decimal128(5, 0),
            DataType::Boolean,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Binary,
            DataType::Date32,
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Interval(IntervalUnit::MonthDayNano),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            list(DataType::Int32),
            list(DataType::Utf8),
            list(DataType::Float64),
            list(DataType::Boolean),
            DataType::Utf8,
            list(DataType::Decimal128(6, 2)),
            list(DataType::Date32),
            list(DataType::Utf8),
            DataType::Int32,
        ]
    );
    let want: Vec<Vec<&str>> = vec![
        vec![
            "1",
            "-32768",
            "-2147483648",
            "-9223372036854775808",
            "-3.4028235e38",
            "-1.7976931348623157e308",
            "-123456789012345678.12345678901234567890",
            "-99999999.99",
            "-99999",
            "false",
            "",
            "",
            "     ",
            "00",
            "0001-01-01",
            "00:00:00",
            "1900-01-01T00:00:00",
            "1900-01-01T00:00:00Z",
            "-2136000000 mons",
            "00000000-0000-0000-0000-000000000000",
            "{}",
            "{}",
            "[]",
            "[]",
            "[]",
            "[]",
            "sad",
            "[]",
            "[]",
            "[]",
            "1",
        ],
        vec![
            "2",
            "32767",
            "2147483647",
            "9223372036854775807",
            "3.4028235e38",
            "1.7976931348623157e308",
            "123456789012345678.12345678901234567890",
            "99999999.99",
            "99999",
            "true",
            "héllo wörld 日本語 🎉",
            "ünïcødé 🎉",
            "ab   ",
            "deadbeef",
            "9999-12-31",
            "23:59:59.999999",
            "2200-12-31T23:59:59.999999",
            "2200-12-31T18:29:59.999999Z",
            "14 mons 3 days 4 hours 5 mins 6.789000000 secs",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            r#"{"k": [1, "ü", null]}"#,
            r#"{"k": [1, "ü", null]}"#,
            "[1, NULL, -2147483648]",
            "[a, , 日本, NULL]",
            "[1.5, NULL, -0.0]",
            "[true, false, NULL]",
            "héureux 😀",
            "[1.25, NULL, -9999.99]",
            "[2024-02-29, NULL]",
            "[ok, NULL, héureux 😀]",
            "2147483647",
        ],
        std::iter::once("3")
            .chain(std::iter::repeat_n("NULL", 30))
            .collect(),
        vec![
            "4",
            "0",
            "0",
            "0",
            "NaN",
            "-inf",
            "0.10000000000000000000",
            "0.01",
            "0",
            "NULL",
            "x",
            "x",
            "x    ",
            "",
            "2000-02-29",
            "12:00:00",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00Z",
            "-1 days",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "null",
            "null",
            "[7]",
            "[NULL]",
            "[NaN, inf]",
            "[NULL]",
            "NULL",
            "[0.00]",
            "[]",
            "[]",
            "NULL",
        ],
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn filters_and_aggregates_on_each_type_run_in_postgres_and_agree() {
    let weft = source_with(ALL_TYPES, UnsupportedTypes::Error)
        .await
        .unwrap();
    for (sql, want) in [
        (
            "SELECT id FROM pg.public.t WHERE tstz > TIMESTAMP '2000-01-01 00:00:00' ORDER BY id",
            vec!["2"],
        ),
        (
            "SELECT id FROM pg.public.t WHERE d = DATE '9999-12-31'",
            vec!["2"],
        ),
        ("SELECT id FROM pg.public.t WHERE m = 'sad'", vec!["1"]),
        ("SELECT id FROM pg.public.t WHERE txt LIKE 'h%'", vec!["2"]),
        (
            "SELECT id FROM pg.public.t WHERE i64 < 0 AND b IS NOT NULL",
            vec!["1"],
        ),
        (
            "SELECT id FROM pg.public.t WHERE u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            vec!["4"],
        ),
    ] {
        let (_, got) = query(&weft, sql).await;
        let got: Vec<String> = got.into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(got, want, "{sql}");
    }
    // Postgres returns numeric for sum(bigint) and avg(integer); DataFusion expects Int64
    // and Float64, and gets them.
    let (types, got) = query(
        &weft,
        "SELECT count(*), count(i32), sum(i32), sum(i64), avg(i16), min(txt), max(d)          FROM pg.public.t WHERE id <> 2",
    )
    .await;
    assert_eq!(
        types,
        [
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Date32
        ]
    );
    assert_eq!(
        got,
        [[
            "3",
            "2",
            "-2147483648",
            "-9223372036854775808",
            "-16384.0",
            "",
            "2000-02-29"
        ]]
    );
}

#[tokio::test]
async fn decimal_averages_and_quotients_are_datafusions() {
    // DataFusion truncates avg(decimal(10,2)) to 6 places and a decimal quotient to its own
    // scale, where Postgres rounds or keeps more places: those stay in DataFusion, and the
    // answer is the one DataFusion gives over the same values held locally.
    let weft = source_with(
        "CREATE TABLE m (g int, v numeric(10,2));
         INSERT INTO m VALUES (1, 1.00), (1, 2.00), (1, 2.00), (2, 0.02), (2, 0.01), (2, 0.01);",
        UnsupportedTypes::Error,
    )
    .await
    .unwrap();
    let sql =
        "SELECT g, avg(v), sum(v) / 3, sum(v) / sum(v * 7), sum(v) FROM {m} GROUP BY g ORDER BY g";
    let (types, got) = query(&weft, &sql.replace("{m}", "pg.public.m")).await;
    let local = WeftContext::new();
    let values = "(SELECT CAST(g AS INT) AS g, CAST(v AS DECIMAL(10,2)) AS v FROM (VALUES \
                  (1, '1.00'), (1, '2.00'), (1, '2.00'), (2, '0.02'), (2, '0.01'), (2, '0.01')) \
                  AS t(g, v)) AS m";
    let (local_types, want) = query(&local, &sql.replace("{m}", values)).await;
    assert_eq!(types, local_types);
    assert_eq!(got, want);
    assert_eq!(got[0][1], "1.666666", "DataFusion truncates: {got:?}");
}

#[tokio::test]
async fn numerics_wider_than_38_digits() {
    let weft = source_with(
        "CREATE TABLE w (id int, wide numeric(50, 10), bare numeric);
         INSERT INTO w VALUES
           (1, 1234567890123456789012345678901234567890.0123456789, 1),
           (2, -9999999999999999999999999999999999999999.9999999999, NULL),
           (3, NULL, 12345678901234567890123456789012345678901234567890);",
        UnsupportedTypes::Error,
    )
    .await
    .unwrap();
    // Declared precision up to 76 digits: a 256-bit decimal, exact.
    let (types, got) = query(&weft, "SELECT id, wide FROM pg.public.w ORDER BY id").await;
    assert_eq!(types, [DataType::Int32, DataType::Decimal256(50, 10)]);
    assert_eq!(
        got,
        [
            ["1", "1234567890123456789012345678901234567890.0123456789"],
            ["2", "-9999999999999999999999999999999999999999.9999999999"],
            ["3", "NULL"],
        ]
    );
    // A bare numeric is read as decimal(38, 20); a value that does not fit is an error that
    // names the column and the value, never a rounded number.
    let (_, got) = query(&weft, "SELECT bare FROM pg.public.w WHERE id = 1").await;
    assert_eq!(got, [["1.00000000000000000000"]]);
    let err = query_error(&weft, "SELECT bare FROM pg.public.w WHERE id = 3").await;
    for part in [
        "source `pg` (postgres)",
        "column `bare`",
        "12345678901234567890123456789012345678901234567890",
    ] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
}

#[tokio::test]
async fn values_outside_arrow_are_errors_naming_the_column() {
    let weft = source_with(
        "CREATE TABLE v (id int, ts timestamp, grid int[]);
         INSERT INTO v VALUES (1, 'infinity', '{1}'), (2, '2024-01-01', '{{1,2},{3,4}}');",
        UnsupportedTypes::Error,
    )
    .await
    .unwrap();
    let err = query_error(&weft, "SELECT ts FROM pg.public.v").await;
    assert!(
        err.contains("column `ts`") && err.contains("infinite"),
        "{err}"
    );
    let err = query_error(&weft, "SELECT grid FROM pg.public.v").await;
    assert!(
        err.contains("column `grid`") && err.contains("2-dimensional"),
        "{err}"
    );
    let (_, got) = query(&weft, "SELECT id FROM pg.public.v WHERE id = 2").await;
    assert_eq!(got, [["2"]]);
}

const UNMAPPABLE: &str =
    "CREATE TABLE places (id int, name text, location point, huge numeric(100));
                          INSERT INTO places VALUES (1, 'Utrecht', '(52.09,5.12)', 7);";

#[tokio::test]
async fn a_type_without_arrow_mapping_names_table_column_and_type() {
    let err = source_with(UNMAPPABLE, UnsupportedTypes::Error)
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "source `pg` (postgres)",
        "table `public.places`",
        "column `location`",
        "`point`",
        "in a view",
        r#"unsupported_types = "skip""#,
    ] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
}

#[tokio::test]
async fn unmappable_columns_can_be_left_out() {
    let weft = source_with(UNMAPPABLE, UnsupportedTypes::Skip)
        .await
        .unwrap();
    let (types, got) = query(&weft, "SELECT * FROM pg.public.places").await;
    assert_eq!(types, [DataType::Int32, DataType::Utf8]);
    assert_eq!(got, [["1", "Utrecht"]]);
}
