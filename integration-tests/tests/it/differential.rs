//! The same queries over the same data, placed in SQLite and held locally in DataFusion,
//! must give the same answers. The `.slt` suite does this for every query it holds (see
//! `tests/slt.rs`); this covers what an `.slt` file cannot: results compared to each other
//! rather than to expectations written down.

use integration_tests::{federated, local, rows};

const QUERIES: &[&str] = &[
    "SELECT status, count(*), sum(amount), min(ordered_at), max(ordered_at) FROM shop.main.orders GROUP BY status ORDER BY status",
    "SELECT c.country, avg(o.amount) FROM shop.main.customers c LEFT JOIN shop.main.orders o ON o.customer_id = c.id GROUP BY c.country ORDER BY c.country",
    "SELECT id, email FROM shop.main.customers WHERE email IS NULL ORDER BY id LIMIT 20",
    "SELECT id FROM shop.main.customers c WHERE EXISTS (SELECT 1 FROM shop.main.orders o WHERE o.customer_id = c.id AND o.status = 'returned' AND o.amount > 400) ORDER BY id",
    "SELECT id FROM shop.main.customers c WHERE NOT EXISTS (SELECT 1 FROM shop.main.orders o WHERE o.customer_id = c.id AND o.ordered_at >= TIMESTAMP '2024-06-01 00:00:00') ORDER BY id",
    "SELECT count(*) FROM shop.main.customers WHERE id IN (SELECT customer_id FROM lake.public.events WHERE kind = 'purchase' AND value > 199)",
    "SELECT signup_date, count(*) FROM shop.main.customers WHERE signup_date BETWEEN DATE '2023-03-01' AND DATE '2023-03-07' GROUP BY signup_date ORDER BY signup_date",
    "SELECT name FROM shop.main.customers WHERE name > 'Zoë' ORDER BY name DESC LIMIT 5",
];

#[tokio::test]
async fn sqlite_placement_answers_like_local() {
    let (weft, _) = federated().await;
    let reference = local().await;
    for sql in QUERIES {
        let got = rows(&weft.sql(sql).await.unwrap().collect().await.unwrap());
        let want = rows(&reference.sql(sql).await.unwrap().collect().await.unwrap());
        assert_eq!(got, want, "{sql}");
    }
}
