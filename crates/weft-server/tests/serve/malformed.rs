//! Garbage in, clean errors out: generated SQL (token soup around real table and column
//! names) and malformed Flight requests (random tickets, commands and actions) sent to a real
//! server. Nothing may panic, every error must be a status with a message, and the server must
//! answer normally afterwards. Seeded, so a failure repeats.

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightDescriptor, Ticket};
use futures::TryStreamExt as _;
use prost::bytes::Bytes;

use crate::common::{self, Server};

/// A seeded generator: the same inputs everywhere.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.usize(..n)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max + 1)).map(|_| self.0.u8(..)).collect()
    }
}

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "*",
    ",",
    "(",
    ")",
    "=",
    "<",
    "+",
    "/",
    "'",
    "\"",
    ";",
    "--",
    "1",
    "0",
    "-1",
    "1e309",
    "9223372036854775808",
    "'x'",
    "''",
    "count(*)",
    "sum(",
    "CAST(",
    "AS",
    "INT",
    "DATE",
    "shop.main.customers",
    "shop.main.orders",
    "lake.public.events",
    "id",
    "name",
    "amount",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "UNION",
    "EXISTS",
    "IN",
    "$1",
    "?",
    "\u{0}",
    "é",
    "🙂",
    "DROP TABLE x",
    "INSERT INTO",
    "COPY",
    "SET",
    "EXPLAIN",
    "WITH",
    "RECURSIVE",
    "OVER (",
    "range(",
];

fn soup(rng: &mut Rng) -> String {
    let mut sql = String::from(if rng.below(3) > 0 { "SELECT " } else { "" });
    for _ in 0..1 + rng.below(14) {
        sql.push_str(TOKENS[rng.below(TOKENS.len())]);
        sql.push(' ');
    }
    sql
}

fn assert_clean(what: &str, status: &tonic::Status) {
    assert!(
        !status.message().trim().is_empty(),
        "{what}: an error without a message: {status:?}"
    );
}

#[tokio::test]
async fn garbage_never_panics_and_every_error_is_a_clean_status() {
    let server = Server::with_config(
        &common::demo_config(&format!(
            "[server]\nquery_timeout_secs = 2\n\n[[users]]\nname = \"ana\"\npassword_hash = \"{}\"\n",
            common::hash_password("pw")
        )),
        &[],
    );
    let mut client = common::login(&server.url(), "ana", "pw").await;
    let token = client.token().unwrap().clone();
    let channel =
        tonic::transport::Channel::from_shared(server.url().replace("grpc://", "http://"))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut raw = FlightServiceClient::new(channel);
    fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    let mut rng = Rng::new(0x5EED_CAFE_F00D_0001);
    let mut answered = 0;
    for i in 0..300 {
        let sql = soup(&mut rng);
        match common::query(&mut client, &sql).await {
            Ok(_) => answered += 1,
            Err(arrow_flight::error::FlightError::Tonic(status)) => assert_clean(&sql, &status),
            Err(other) => panic!("{sql}: not a status: {other:?}"),
        }

        let ticket = Ticket {
            ticket: Bytes::from(rng.bytes(64)),
        };
        match raw.do_get(authorized(&token, ticket)).await {
            Ok(response) => {
                if let Err(status) = response.into_inner().try_collect::<Vec<_>>().await {
                    assert_clean("do_get", &status);
                }
            }
            Err(status) => assert_clean("do_get", &status),
        }

        let descriptor = FlightDescriptor::new_cmd(rng.bytes(64));
        if let Err(status) = raw.get_flight_info(authorized(&token, descriptor)).await {
            assert_clean("get_flight_info", &status);
        }

        let kinds = [
            "CreatePreparedStatement",
            "ClosePreparedStatement",
            "CancelQuery",
            "",
            "x",
        ];
        let action = Action {
            r#type: kinds[i % kinds.len()].to_string(),
            body: Bytes::from(rng.bytes(64)),
        };
        match raw.do_action(authorized(&token, action)).await {
            Ok(response) => {
                if let Err(status) = response.into_inner().try_collect::<Vec<_>>().await {
                    assert_clean("do_action", &status);
                }
            }
            Err(status) => assert_clean("do_action", &status),
        }
    }
    let panics: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "{panics:#?}");
    // Some of the soup is a valid query; the server still answers a normal one.
    eprintln!("{answered} of 300 generated statements were answered");
    let batches = common::query(&mut client, "SELECT count(*) FROM shop.main.customers")
        .await
        .unwrap();
    assert_eq!(common::rows(&batches), ["2000"]);
}
