//! The same queries over the same data, placed in SQLite and held locally in DataFusion,
//! must give the same answers. The `.slt` suite does this for every query it holds (see
//! `tests/slt.rs`); this covers what an `.slt` file cannot: results compared to each other
//! rather than to expectations written down.

use integration_tests::{federated, local, rows};
use weft_core::Source;

const QUERIES: &[&str] = &[
    "SELECT status, count(*), sum(amount), min(ordered_at), max(ordered_at) FROM shop.main.orders GROUP BY status ORDER BY status",
    "SELECT c.country, avg(o.amount) FROM shop.main.customers c LEFT JOIN shop.main.orders o ON o.customer_id = c.id GROUP BY c.country ORDER BY c.country",
    "SELECT id, email FROM shop.main.customers WHERE email IS NULL ORDER BY id LIMIT 20",
    "SELECT id FROM shop.main.customers c WHERE EXISTS (SELECT 1 FROM shop.main.orders o WHERE o.customer_id = c.id AND o.status = 'returned' AND o.amount > 400) ORDER BY id",
    "SELECT id FROM shop.main.customers c WHERE NOT EXISTS (SELECT 1 FROM shop.main.orders o WHERE o.customer_id = c.id AND o.ordered_at >= TIMESTAMP '2024-06-01 00:00:00') ORDER BY id",
    "SELECT count(*) FROM shop.main.customers WHERE id IN (SELECT customer_id FROM lake.public.events WHERE kind = 'purchase' AND value > 199)",
    "SELECT signup_date, count(*) FROM shop.main.customers WHERE signup_date BETWEEN DATE '2023-03-01' AND DATE '2023-03-07' GROUP BY signup_date ORDER BY signup_date",
    "SELECT name FROM shop.main.customers WHERE name > 'Zoë' ORDER BY name DESC LIMIT 5",
    // Joins across the sources, where the side read second gets the first side's keys in
    // its SQL (weft-core's `dynamic`): inner, outer, semi and anti, ranges and lists.
    "SELECT o.status, count(*), sum(o.amount) FROM lake.public.events e JOIN shop.main.orders o ON o.customer_id = e.customer_id WHERE e.month = '2024-02' AND e.value > 190 GROUP BY o.status ORDER BY o.status",
    "SELECT e.event_id, o.id FROM lake.public.events e LEFT JOIN shop.main.orders o ON o.customer_id = e.customer_id AND o.amount > 450 WHERE e.month = '2024-02' AND e.value > 195 ORDER BY 1, 2",
    "SELECT e.event_id, o.id FROM shop.main.orders o RIGHT JOIN lake.public.events e ON o.customer_id = e.customer_id WHERE e.month = '2024-05' AND e.value > 198 ORDER BY 1, 2",
    "SELECT count(*), sum(o.amount) FROM shop.main.orders o JOIN lake.public.events e ON e.customer_id = o.customer_id WHERE e.month = '2024-03' AND e.customer_id BETWEEN 100 AND 300",
    "SELECT count(*) FROM shop.main.orders o WHERE o.customer_id NOT IN (SELECT customer_id FROM lake.public.events WHERE month = '2024-01' AND kind = 'purchase')",
    "SELECT count(*) FROM shop.main.orders o WHERE EXISTS (SELECT 1 FROM lake.public.events e WHERE e.customer_id = o.customer_id AND e.month = '2024-04' AND e.value > 199)",
    "SELECT c.country, count(*) FROM lake.public.events e JOIN shop.main.customers c ON c.id = e.customer_id JOIN shop.main.orders o ON o.customer_id = c.id WHERE e.month = '2024-06' AND e.customer_id % 7 = 3 GROUP BY c.country ORDER BY c.country",
];

#[tokio::test]
async fn sqlite_placement_answers_like_local() {
    let (weft, shop) = federated().await;
    let reference = local().await;
    let mut narrowed = 0;
    for sql in QUERIES {
        let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
        let want = rows(&reference.sql(sql).await.unwrap().collect().await.unwrap());
        assert_eq!(got, want, "{sql}");
        let log = shop.query_log().unwrap();
        if log
            .statements()
            .iter()
            .any(|s| s.contains("weft_dynamic_filter"))
        {
            narrowed += 1;
        }
        log.clear();
    }
    // The joins across sources above are there for their dynamic filters: most must get one.
    assert!(
        narrowed >= 6,
        "only {narrowed} queries sent SQLite a join's keys"
    );
}
