//! Limits and operations: time limits (the server's and the client's gRPC deadline), the
//! concurrency limit and its queue, memory limits, `/health` and `/metrics`, JSON logs. Each
//! test ends by checking that the server still answers a normal query.

use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightInfo,
};
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt as _;
use prost::Message as _;

use crate::common::{self, Server};

/// 10^13 rows summed in DataFusion: it never ends by itself, and (its scan taking turns with
/// other tasks, as DataFusion's scans do) it can be stopped at any time.
const ENDLESS: &str = "SELECT sum(value % 7) FROM range(10000000000000)";

fn config(server: &str) -> String {
    common::demo_config(&format!(
        "[server]\n{server}\n\n[[users]]\nname = \"ana\"\npassword_hash = \"{}\"\n",
        common::hash_password("pw")
    ))
}

fn status(error: FlightError) -> tonic::Status {
    match error {
        FlightError::Tonic(status) => *status,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

async fn still_answers(url: &str) {
    let mut client = common::login(url, "ana", "pw").await;
    let batches = common::query(&mut client, "SELECT count(*) FROM shop.main.customers")
        .await
        .expect("a normal query after the limit was hit");
    assert_eq!(common::rows(&batches), ["2000"]);
}

#[tokio::test]
async fn a_query_past_the_time_limit_is_stopped_and_says_which_limit() {
    let server = Server::with_config(&config("query_timeout_secs = 1"), &[]);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    let started = Instant::now();
    let error = status(common::query(&mut client, ENDLESS).await.unwrap_err());
    assert_eq!(error.code(), tonic::Code::DeadlineExceeded, "{error}");
    assert!(
        error.message().contains("`[server] query_timeout_secs`"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    still_answers(&server.url()).await;
}

#[tokio::test]
async fn the_clients_grpc_deadline_is_honoured() {
    let server = Server::with_config(&config(""), &[]);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    let info = client.execute(ENDLESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();

    let channel =
        tonic::transport::Channel::from_shared(server.url().replace("grpc://", "http://"))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut raw = FlightServiceClient::new(channel);
    let mut request = tonic::Request::new(ticket);
    request.set_timeout(Duration::from_secs(1));
    let token = client.token().unwrap();
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let started = Instant::now();
    let error = match raw.do_get(request).await {
        Err(status) => status,
        Ok(response) => response
            .into_inner()
            .try_collect::<Vec<_>>()
            .await
            .expect_err("the query cannot end within the deadline"),
    };
    assert!(
        matches!(
            error.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log("query failed", 1);
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("the client's deadline")),
        "{:#?}",
        server.log()
    );
    still_answers(&server.url()).await;
}

#[tokio::test]
async fn past_the_concurrency_limit_the_server_is_busy_and_a_cancelled_query_frees_its_slot() {
    let server = Server::with_config(
        &config("max_concurrent_queries = 1\nmax_queued_queries = 0"),
        &[],
    );
    let mut first = common::login(&server.url(), "ana", "pw").await;
    let info = first.execute(ENDLESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let running = first.do_get(ticket).await.unwrap();

    let mut second = common::login(&server.url(), "ana", "pw").await;
    let error = status(common::query(&mut second, "SELECT 1").await.unwrap_err());
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error}");
    assert!(error.message().starts_with("server busy"), "{error}");
    assert!(
        error.message().contains("max_concurrent_queries"),
        "{error}"
    );

    // The client walks away from the endless query: the server drops it and frees the slot.
    drop(running);
    drop(first);
    // Waits without blocking this test's runtime, which sends the client's cancellation.
    let mut cancelled = false;
    for _ in 0..300 {
        if server
            .log()
            .iter()
            .any(|l| l.contains("query cancelled by the client"))
        {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cancelled, "{:#?}", server.log());
    still_answers(&server.url()).await;
}

/// Sends `action` and reads its one result.
async fn action(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    kind: &str,
    body: Vec<u8>,
) -> Result<prost::bytes::Bytes, tonic::Status> {
    let results = client
        .do_action(Action::new(kind, body))
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let results = results.try_collect::<Vec<_>>().await?;
    assert_eq!(results.len(), 1, "{results:?}");
    Ok(results[0].body.clone())
}

/// Starts ENDLESS and reads it in the background; the FlightInfo and the reader.
async fn start_endless(
    url: &str,
) -> (
    FlightInfo,
    tokio::task::JoinHandle<Result<Vec<RecordBatch>, FlightError>>,
) {
    let mut client = common::login(url, "ana", "pw").await;
    let info = client.execute(ENDLESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    // The query runs once DoGet has answered.
    let stream = client.do_get(ticket).await.unwrap();
    let reading = tokio::spawn(async move {
        let _client = client;
        stream.try_collect::<Vec<_>>().await
    });
    (info, reading)
}

#[tokio::test]
async fn cancel_flight_info_stops_the_running_query_and_refuses_its_ticket_later() {
    let server = Server::with_config(&config(""), &[]);
    let (info, reading) = start_endless(&server.url()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another connection of the same user cancels it.
    let mut canceller = common::login(&server.url(), "ana", "pw").await;
    let started = Instant::now();
    let body = CancelFlightInfoRequest::new(info.clone()).encode_to_vec();
    let result = action(&mut canceller, "CancelFlightInfo", body)
        .await
        .unwrap();
    let result = CancelFlightInfoResult::decode(result).unwrap();
    assert_eq!(result.status(), CancelStatus::Cancelled);
    let error = status(reading.await.unwrap().unwrap_err());
    assert_eq!(error.code(), tonic::Code::Cancelled, "{error}");
    assert!(error.message().contains("CancelFlightInfo"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log("query cancelled by the client", 1);

    // Its ticket, fetched again, is refused: the client cancelled that query.
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let error = match canceller.do_get(ticket).await {
        Err(e) => e.to_string(),
        Ok(stream) => stream
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err()
            .to_string(),
    };
    assert!(error.contains("was cancelled"), "{error}");

    // The deprecated CancelQuery does the same.
    let (info, reading) = start_endless(&server.url()).await;
    let request = arrow_flight::sql::ActionCancelQueryRequest {
        info: info.encode_to_vec().into(),
    };
    let body = arrow_flight::sql::Any::pack(&request)
        .unwrap()
        .encode_to_vec();
    let result = action(&mut canceller, "CancelQuery", body).await.unwrap();
    let result = arrow_flight::sql::Any::decode(result)
        .unwrap()
        .unpack::<arrow_flight::sql::ActionCancelQueryResult>()
        .unwrap()
        .unwrap();
    assert_eq!(result.result, i32::from(CancelStatus::Cancelled));
    let error = status(reading.await.unwrap().unwrap_err());
    assert_eq!(error.code(), tonic::Code::Cancelled, "{error}");

    // A FlightInfo of no query of this server cannot be cancelled.
    let body = CancelFlightInfoRequest::new(FlightInfo::new()).encode_to_vec();
    let result = action(&mut canceller, "CancelFlightInfo", body)
        .await
        .unwrap();
    let result = CancelFlightInfoResult::decode(result).unwrap();
    assert_eq!(result.status(), CancelStatus::NotCancellable);
    still_answers(&server.url()).await;
}

/// A plan that keeps its threads busy between two polls for a long time (a nested-loop join
/// evaluates its whole build side against each probe batch before it returns).
const BUSY: &str =
    "SELECT count(*) FROM range(400000) a, range(400000) b WHERE a.value * b.value = 7";

#[tokio::test]
async fn a_busy_plan_does_not_hold_up_its_deadline_or_other_clients_calls() {
    let server = Server::with_config(
        &config(
            "query_timeout_secs = 2
http_listen = \"127.0.0.1:0\"",
        ),
        &[],
    );
    let address = http_address(&server);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    let started = Instant::now();
    let busy = tokio::spawn(async move { common::query(&mut client, BUSY).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // While the query threads are busy, the server still logs people in and answers /health.
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut other = common::login(&server.url(), "ana", "pw").await;
        other.execute("SELECT 1".to_string(), None).await
    })
    .await
    .expect("no answer within 10 s while the query threads are busy");
    answered.expect("planning answers while the query threads are busy");
    let (code, body) = tokio::task::spawn_blocking(move || get(&address, "/health"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let error = status(busy.await.unwrap().unwrap_err());
    assert_eq!(error.code(), tonic::Code::DeadlineExceeded, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline of 2 s was answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_query_over_its_memory_limit_fails_naming_the_limit() {
    let server = Server::with_config(&config("query_memory_limit = \"1 MiB\""), &[]);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    // The hash join's build side alone is tens of MiB, and a hash join cannot spill.
    let sql = "SELECT count(*) FROM range(3000000) a JOIN range(3000000) b ON a.value = b.value";
    let error = status(common::query(&mut client, sql).await.unwrap_err());
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error}");
    assert!(
        error.message().contains("`[server] query_memory_limit`"),
        "{error}"
    );
    assert!(error.message().contains("1.0 MiB"), "{error}");
    still_answers(&server.url()).await;
}

#[tokio::test]
async fn a_sort_over_the_memory_limit_spills_to_disk_and_finishes() {
    let server = Server::with_config(&config("query_memory_limit = \"64 MiB\""), &[]);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    // Sorting 8 million rows for the window takes far more than 64 MiB: the sort spills.
    let sql = "SELECT sum(rn), count(*) FROM (SELECT row_number() OVER (ORDER BY value % 1000, \
               value) AS rn FROM range(8000000))";
    let batches = common::query(&mut client, sql)
        .await
        .expect("the sort spills instead of failing");
    assert_eq!(common::rows(&batches), ["32000004000000|8000000"]);
    still_answers(&server.url()).await;
}

#[tokio::test]
async fn on_sigterm_a_query_in_flight_finishes_whole_and_new_ones_are_refused() {
    let server = Server::with_config(&config(""), &[]);
    let mut client = common::login(&server.url(), "ana", "pw").await;
    // A few seconds of work: 0..49 999 999 mod 7, summed (7 142 857 cycles of 0+1+...+6).
    let sql = "SELECT sum(value % 7) FROM range(50000000)";
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    let reading = tokio::spawn(stream.try_collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    server.wait_for_log("Shutting down", 1);

    let batches = reading
        .await
        .unwrap()
        .expect("the query in flight finishes");
    assert_eq!(common::rows(&batches), ["149999997"]);
    // The line is written just after the client saw the end.
    server.wait_for_log("query done", 1);
    let log = server.log();
    let position = |needle: &str| log.iter().position(|l| l.contains(needle));
    assert!(
        position("Shutting down") < position("query done"),
        "the query ended before the shutdown began, so this checked nothing: {log:#?}"
    );
    // No new connection is accepted any more.
    let endpoint = server.url().replace("grpc://", "http://");
    let refused = tonic::transport::Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    assert!(server.stop().success(), "weft serve did not exit cleanly");
}

/// The `host:port` of the server's HTTP endpoint, from its start-up line.
fn http_address(server: &Server) -> String {
    let line = server.wait_for_log("Health and metrics on http://", 1);
    line[0]
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string()
}

/// `GET path` on `address`: the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

#[tokio::test]
async fn health_names_each_source_and_metrics_count_queries_and_source_traffic() {
    let scratch = common::scratch();
    let copy = scratch.path().join("copy.db");
    std::fs::copy(&common::demo().sqlite, &copy).unwrap();
    let config = config("http_listen = \"127.0.0.1:0\"").replacen(
        "[server]",
        &format!(
            "[[sources]]\nname = \"copy\"\nkind = \"sqlite\"\npath = \"{}\"\n\n[server]",
            copy.display()
        ),
        1,
    );
    let server = Server::with_config(&config, &[]);
    let address = http_address(&server);

    let (code, body) = get(&address, "/health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("source shop (sqlite): up"), "{body}");
    assert!(body.contains("source copy (sqlite): up"), "{body}");

    let mut client = common::login(&server.url(), "ana", "pw").await;
    common::query(&mut client, "SELECT count(*) FROM copy.main.customers")
        .await
        .unwrap();
    common::query(
        &mut client,
        "SELECT no_such_column FROM copy.main.customers",
    )
    .await
    .unwrap_err();
    server.wait_for_log("query done", 1);
    let (code, metrics) = get(&address, "/metrics");
    assert_eq!(code, 200, "{metrics}");
    for line in [
        "weft_queries_total{outcome=\"ok\"} 1",
        "weft_queries_total{outcome=\"failed\"} 1",
        "weft_query_duration_seconds_count 2",
        "weft_queries_running 0",
        "weft_source_statements_total{source=\"copy\"} 1",
        "weft_source_rows_total{source=\"copy\"} 1",
        "weft_source_errors_total{source=\"copy\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    assert!(metrics.contains("weft_memory_reserved_bytes"), "{metrics}");

    // The file goes away: health says which source is down; queries elsewhere still run.
    std::fs::remove_file(&copy).unwrap();
    let (code, body) = get(&address, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("source copy (sqlite): down"), "{body}");
    assert!(body.contains("source shop (sqlite): up"), "{body}");
    still_answers(&server.url()).await;
}

#[tokio::test]
async fn json_logs_carry_each_querys_fields() {
    let server = Server::with_config(
        &config(""),
        &[
            ("WEFT_LOG_FORMAT", "json"),
            ("WEFT_LOG", "warn,weft=info,weft_core=debug"),
        ],
    );
    let mut client = common::login(&server.url(), "ana", "pw").await;
    common::query(&mut client, "SELECT count(*) FROM shop.main.customers")
        .await
        .unwrap();
    let line = server.wait_for_log("query done", 1);
    let event: serde_json::Value = serde_json::from_str(&line[0]).expect("a JSON log line");
    assert_eq!(event["fields"]["message"], "query done", "{event}");
    assert_eq!(event["fields"]["user"], "ana", "{event}");
    assert_eq!(event["fields"]["rows"], 1, "{event}");
    assert_eq!(event["level"], "INFO", "{event}");
    assert_eq!(event["span"]["name"], "query", "{event}");
    let id = event["span"]["id"].as_str().expect("the query's id");
    assert_eq!(id.len(), 8, "{event}");

    // The statement sent to the source is logged in the query's span, with what came back.
    let line = server.wait_for_log("remote query ended", 1);
    let remote: serde_json::Value = serde_json::from_str(&line[0]).expect("a JSON log line");
    assert_eq!(remote["span"]["name"], "query", "{remote}");
    assert_eq!(remote["span"]["id"], id, "{remote}");
    assert_eq!(remote["fields"]["source"], "shop", "{remote}");
    assert_eq!(remote["fields"]["rows"], 1, "{remote}");
    assert_eq!(remote["fields"]["outcome"], "done", "{remote}");
    let sql = remote["fields"]["sql"].as_str().unwrap();
    assert!(sql.contains("customers"), "{remote}");
    assert!(remote["fields"]["bytes"].as_u64().unwrap() > 0, "{remote}");
}
