"""The peers of `weft-bench`'s PostgreSQL table read: one whole table from PostgreSQL into an
Arrow table in memory, by one reader per process (so that each peak memory is its own).

Reads a job as JSON on stdin and writes the result as JSON on stdout; `weft-bench` runs it in
xtask's virtual environment once per reader.

Job:
  {"reader": "duckdb" | "connectorx" | "adbc", "conninfo": LIBPQ_CONNINFO, "url": POSTGRES_URL,
   "table": NAME, "partition_on": COLUMN, "partitions": N, "runs": N, "threads": N,
   "self_warming": SECONDS, "iface": NAME}

- duckdb: DuckDB's postgres scanner (`ATTACH ... (TYPE postgres)`; binary COPY over ctid
  ranges, read by `threads` threads), materialised with `to_arrow_table()`.
- connectorx: `read_sql(..., return_type="arrow")` split into `partitions` ranges of
  `partition_on`.
- adbc: ADBC's PostgreSQL driver (libpq, binary COPY), one connection, `fetch_arrow_table()`.

Result: {"reader", "times": [seconds...], "rows": int, "columns": int, "arrow_bytes": int,
"wire_bytes": int (median run), "peak_rss": bytes} or {"reader", "error": "..."}.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duckdb_bench import (  # noqa: E402
    connect,
    extension_file,
    load_extension,
    peak_rss,
    reset_peak_rss,
    wire_bytes,
)


def reader(job):
    """A function that reads the table once and returns it as a pyarrow Table."""
    table, name = job["table"], job["reader"]
    sql = f"SELECT * FROM {table}"
    if name == "duckdb":
        con = connect(job["threads"])
        load_extension(con, extension_file("duckdb_extension_postgres"), "postgres_scanner")
        conninfo = job["conninfo"].replace("'", "''")
        con.execute(f"ATTACH '{conninfo}' AS pg (TYPE postgres, READ_ONLY)")
        return lambda: con.execute(f"SELECT * FROM pg.public.{table}").to_arrow_table()
    if name == "connectorx":
        import connectorx

        return lambda: connectorx.read_sql(
            job["url"],
            sql,
            return_type="arrow",
            partition_on=job["partition_on"],
            partition_num=int(job["partitions"]),
        )
    if name == "adbc":
        import adbc_driver_postgresql.dbapi

        con = adbc_driver_postgresql.dbapi.connect(job["url"])

        def read():
            with con.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table()

        return read
    raise SystemExit(f"no reader named {name}")


def main():
    job = json.load(sys.stdin)
    iface = job.get("iface", "lo")
    try:
        read = reader(job)
        times, moved, first = [], [], True
        reset_peak_rss()
        while len(times) < int(job["runs"]):
            before, started = wire_bytes(iface), time.perf_counter()
            result = read()
            took = time.perf_counter() - started
            if not first or took >= float(job["self_warming"]):
                times.append(took)
                moved.append(wire_bytes(iface) - before)
            first = False
            rows, columns, arrow_bytes = result.num_rows, result.num_columns, result.nbytes
            del result
        out = {
            "reader": job["reader"],
            "times": times,
            "rows": rows,
            "columns": columns,
            "arrow_bytes": arrow_bytes,
            "wire_bytes": int(statistics.median(moved)),
            "peak_rss": peak_rss(),
        }
    except Exception as e:  # a failed reader is a result, not the end of the run
        out = {"reader": job["reader"], "error": str(e).splitlines()[0] if str(e) else repr(e)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
