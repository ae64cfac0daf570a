//! `weft serve` over Postgres, end to end: a client that cancels its query (CancelFlightInfo)
//! or goes away leaves nothing running in Postgres.

use arrow_flight::{Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus};
use futures::TryStreamExt as _;
use integration_tests::eventually;
use integration_tests::pg::{self, HOPELESS};
use integration_tests::serve::{hash_password, weft_binary, WeftServe};
use prost::Message as _;

#[tokio::test]
async fn a_cancelled_or_abandoned_query_leaves_nothing_running_in_postgres() {
    let server = pg::server();
    let database = server.database_with_a_hopeless_join().await;
    let bin = weft_binary(None).expect(
        "the `weft` binary (`cargo test --workspace` builds it; or `cargo build -p weft-server`)",
    );
    let config = format!(
        "[[sources]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"{}\"\n\n\
         [[users]]\nname = \"ana\"\npassword_hash = \"{}\"\n",
        server.url(&database),
        hash_password(&bin, "pw").unwrap()
    );
    let weft = WeftServe::start(&bin, &config, "warn,weft=info").unwrap();
    let running = async || server.running(&database, "JOIN").await;

    // CancelFlightInfo from another connection.
    let mut client = weft.client("ana", "pw").await.unwrap();
    let info = client.execute(HOPELESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    let reading = tokio::spawn(stream.try_collect::<Vec<_>>());
    assert!(
        eventually(30, async || running().await == 1).await,
        "the join never showed up in pg_stat_activity"
    );
    let mut canceller = weft.client("ana", "pw").await.unwrap();
    let body = CancelFlightInfoRequest::new(info).encode_to_vec();
    let results = canceller
        .do_action(Action::new("CancelFlightInfo", body))
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let result = CancelFlightInfoResult::decode(results[0].body.clone()).unwrap();
    assert_eq!(result.status(), CancelStatus::Cancelled);
    let error = reading.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("cancelled"), "{error}");
    assert!(
        eventually(10, async || running().await == 0).await,
        "the join still runs in Postgres after CancelFlightInfo"
    );

    // A client that goes away.
    let mut client = weft.client("ana", "pw").await.unwrap();
    let info = client.execute(HOPELESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    assert!(
        eventually(30, async || running().await == 1).await,
        "the join never showed up in pg_stat_activity"
    );
    drop(stream);
    drop(client);
    assert!(
        eventually(10, async || running().await == 0).await,
        "the join still runs in Postgres after its client went away"
    );

    // The server and its pool are fine: the next query is answered.
    let mut client = weft.client("ana", "pw").await.unwrap();
    let info = client
        .execute(
            "SELECT count(*) FROM pg.public.big WHERE k = 1".to_string(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(integration_tests::rows(&batches), [["50000"]]);
}
