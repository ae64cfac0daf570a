//! The server through `arrow-flight`'s Flight SQL client: login, metadata, statements,
//! prepared statements, refusals.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;

use crate::common::{self, fetch, login, query, rows, Server};

#[tokio::test(flavor = "multi_thread")]
async fn logs_in_lists_metadata_and_runs_queries() {
    let server = Server::demo();
    let mut client = login(&server.url(), "demo", "demo").await;

    let catalogs = client.get_catalogs().await.unwrap();
    let catalogs = rows(&fetch(&mut client, catalogs).await.unwrap());
    assert!(catalogs.contains(&"shop".to_string()), "{catalogs:?}");
    assert!(catalogs.contains(&"lake".to_string()), "{catalogs:?}");

    // No catalog given means every catalog.
    let schemas = client
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .unwrap();
    let schemas = rows(&fetch(&mut client, schemas).await.unwrap());
    assert!(schemas.contains(&"shop|main".to_string()), "{schemas:?}");
    assert!(schemas.contains(&"lake|public".to_string()), "{schemas:?}");

    let tables = client
        .get_tables(CommandGetTables {
            include_schema: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, tables).await.unwrap();
    let batch = &tables[0];
    let names = rows(&[batch.project(&[0, 1, 2, 3]).unwrap()]);
    assert!(
        names.contains(&"shop|main|customers|TABLE".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"lake|public|events|TABLE".to_string()),
        "{names:?}"
    );
    let at = names
        .iter()
        .position(|n| n.starts_with("shop|main|customers"))
        .unwrap();
    let schemas = batch
        .column(4)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::BinaryArray>()
        .unwrap();
    let customers = try_schema_from_ipc_buffer(schemas.value(at)).unwrap();
    assert_eq!(
        customers.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    // Strings are announced as they are sent: Utf8, never Utf8View.
    assert_eq!(
        customers.field_with_name("name").unwrap().data_type(),
        &DataType::Utf8
    );

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let info = fetch(&mut client, info).await.unwrap();
    assert_eq!(info[0].num_rows(), 2);
    assert!(
        rows(&info).iter().any(|r| r.contains("Weft")),
        "{:?}",
        rows(&info)
    );
    let types = client.get_xdbc_type_info(Default::default()).await.unwrap();
    let types = rows(&fetch(&mut client, types).await.unwrap());
    assert!(types.iter().any(|t| t.starts_with("BIGINT|")), "{types:?}");

    // The README's cross-source join.
    let result = rows(&query(&mut client, weft_demo::EXAMPLE_QUERY).await.unwrap());
    assert_eq!(result.len(), 5, "{result:?}");
    assert!(
        result.contains(&"JP|458|46757.11".to_string()),
        "{result:?}"
    );

    // Prepared statements: `$1` as DataFusion writes it, `?` as JDBC and DB-API write it.
    let expected = rows(
        &query(
            &mut client,
            "SELECT name FROM shop.main.customers WHERE id = 7",
        )
        .await
        .unwrap(),
    );
    assert_eq!(expected.len(), 1);
    for sql in [
        "SELECT name FROM shop.main.customers WHERE id = $1",
        "SELECT name FROM shop.main.customers WHERE id = ? -- what's this?",
    ] {
        let mut prepared = client.prepare(sql.to_string(), None).await.unwrap();
        let params = prepared.parameter_schema().unwrap().clone();
        assert_eq!(params.fields().len(), 1, "{params:?}");
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![7]))],
        )
        .unwrap();
        prepared.set_parameters(batch).unwrap();
        let info = prepared.execute().await.unwrap();
        assert_eq!(
            rows(&fetch(&mut client, info).await.unwrap()),
            expected,
            "{sql}"
        );
        prepared.close().await.unwrap();
    }

    // Each statement is logged with the user, the rows and the sources it touched.
    let done = server.wait_for_log("query done", 4);
    let join = done
        .iter()
        .find(|l| l.contains("sources=lake,shop"))
        .unwrap_or_else(|| panic!("no log line for the join: {done:#?}"));
    assert!(
        join.contains("user=demo") && join.contains("rows=5"),
        "{join}"
    );
    assert!(
        server.stop().success(),
        "weft serve did not exit cleanly on SIGTERM"
    );
}

fn code(error: &arrow_flight::error::FlightError) -> Option<tonic::Code> {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_bad_credentials_and_writes() {
    let (token, hash) = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("hash-token")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        (field("token:"), field("hash:"))
    };
    let config = common::demo_config(&format!(
        "[server]\nsession_ttl_secs = 2\n\n[[users]]\nname = \"ana\"\npassword_hash = \"{}\"\n\n\
         [[tokens]]\nname = \"etl\"\nhash = \"{hash}\"\n",
        common::hash_password("correct horse")
    ));
    let server = Server::with_config(&config, &[]);
    let url = server.url();
    let sql = "SELECT count(*) FROM shop.main.customers";

    // Wrong password and unknown user: the same UNAUTHENTICATED answer.
    let wrong = common::client(&url)
        .await
        .handshake("ana", "battery")
        .await
        .unwrap_err();
    let unknown = common::client(&url)
        .await
        .handshake("bob", "correct horse")
        .await
        .unwrap_err();
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(
        wrong.to_string().contains("invalid user or password"),
        "{wrong}"
    );
    // The handshake error keeps only the status's text: UNAUTHENTICATED's description.
    assert!(
        wrong
            .to_string()
            .contains("valid authentication credentials"),
        "{wrong}"
    );

    // No token at all, and a token the server never issued.
    let mut anonymous = common::client(&url).await;
    let error = query(&mut anonymous, sql).await.unwrap_err();
    assert!(error.to_string().contains("no credentials"), "{error}");
    assert_eq!(code(&error), Some(tonic::Code::Unauthenticated));
    let mut forged = common::client(&url).await;
    forged.set_token("weft1.YW5h.99999999999.AAAA".into());
    let error = query(&mut forged, sql).await.unwrap_err();
    assert!(error.to_string().contains("invalid token"), "{error}");
    assert_eq!(code(&error), Some(tonic::Code::Unauthenticated));

    // A configured API token works as a Bearer token.
    let mut service = common::client(&url).await;
    service.set_token(token);
    assert_eq!(rows(&query(&mut service, sql).await.unwrap()), ["2000"]);

    // A login token works until it expires.
    let mut ana = login(&url, "ana", "correct horse").await;
    assert_eq!(rows(&query(&mut ana, sql).await.unwrap()), ["2000"]);

    // Writes and settings are refused, whichever way they are sent.
    for statement in [
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/weft-copy-test.csv'",
        "SET datafusion.execution.batch_size = 1",
        "INSERT INTO shop.main.customers (id) VALUES (1)",
        "CREATE TABLE t AS SELECT 1",
    ] {
        let error = query(&mut ana, statement).await.unwrap_err();
        assert!(
            error.to_string().contains("Weft serves queries only"),
            "{statement}: {error}"
        );
        let error = ana
            .execute_update(statement.to_string(), None)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("PermissionDenied") || error.to_string().contains("refused"),
            "{statement}: {error}"
        );
    }
    assert!(!std::path::Path::new("/tmp/weft-copy-test.csv").exists());

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let error = query(&mut ana, sql).await.unwrap_err();
    assert!(error.to_string().contains("token expired"), "{error}");
    assert_eq!(code(&error), Some(tonic::Code::Unauthenticated));
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_tls_with_the_configured_certificate() {
    let dir = common::scratch();
    let path = |name: &str| dir.path().join(name);
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    std::fs::write(path("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    // A throwaway CA, and a certificate for `localhost` that it signs.
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=weft-test-ca -keyout ca.key -out ca.pem",
        "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out cert.pem",
    ] {
        let status = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl makes the test certificates (Debian: openssl)");
        assert!(status.success(), "openssl {args}");
    }
    let config = common::demo_config(&format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n\
         [[users]]\nname = \"ana\"\npassword_hash = \"{}\"\n",
        cert.display(),
        key.display(),
        common::hash_password("pw")
    ));
    let server = Server::with_config(&config, &[]);
    let url = server.url();
    let port = url
        .strip_prefix("grpc+tls://127.0.0.1:")
        .expect("a TLS URL");

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(&ca).unwrap(),
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection");
    let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
    client.handshake("ana", "pw").await.unwrap();
    let sql = "SELECT count(*) FROM shop.main.customers";
    assert_eq!(rows(&query(&mut client, sql).await.unwrap()), ["2000"]);

    // Another Weft reaches it as a `grpc+tls` source, trusting the CA named by SSL_CERT_FILE.
    let b = path("b.toml");
    std::fs::write(
        &b,
        format!(
            "[[sources]]\nname = \"a\"\nkind = \"flightsql\"\nurl = \"grpc+tls://localhost:{port}\"\n\
             user = \"ana\"\npassword_env = \"WEFT_TEST_A_PASSWORD\"\ncatalog = \"shop\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--config")
        .arg(&b)
        .args([
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM a.main.customers",
        ])
        .env("WEFT_TEST_A_PASSWORD", "pw")
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "n\n2000\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A plaintext client gets nowhere (an error, or no answer at all).
    let mut plain = common::client(&format!("grpc://127.0.0.1:{port}")).await;
    let attempt = tokio::time::timeout(Duration::from_secs(5), plain.handshake("ana", "pw")).await;
    assert!(!matches!(attempt, Ok(Ok(_))), "a plaintext login succeeded");
}
