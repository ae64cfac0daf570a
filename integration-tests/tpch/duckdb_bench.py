"""DuckDB's side of `cargo xtask bench`: the peer engine, on the same data and placement.

Reads a job as JSON on stdin and writes the results as JSON on stdout; `weft-bench` runs
it in the virtual environment xtask sets up (duckdb with its postgres and sqlite extension
wheels, pinned to the same DuckDB version). Extensions are loaded from the wheels' files,
never downloaded: autoinstall and autoload are off.

Job:
  {"parquet": DIR, "sqlite": FILE, "postgres": LIBPQ_CONNINFO,
   "tables": {"lineitem": "parquet" | "postgres" | "sqlite", ...},
   "queries": [{"n": 1, "sql": "..."}], "runs": N, "threads": N,
   "self_warming": SECONDS (a first run this long counts as timed: no separate warm-up)}

Result, per query: {"n", "times": [seconds...], "wire_bytes": int (median run),
"peak_rss": bytes, "rows": [[text...]...]} or {"n", "error": "..."}.
"""

import datetime
import glob
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal

import duckdb


def wire_bytes(iface):
    """Bytes over the network so far: sent over loopback (each byte counted once), or sent
    plus received on another interface (the host end of weft-bench's shaped link)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == iface:
                fields = rest.split()
                return int(fields[8]) if iface == "lo" else int(fields[0]) + int(fields[8])
    return 0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def text(value):
    """A value as the checked-in answers write it."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def extension_file(package):
    """The `.duckdb_extension` file inside an extension wheel's package."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(f"{package} is not installed in {sys.prefix}")
    for root in spec.submodule_search_locations:
        found = glob.glob(os.path.join(root, "**", "*.duckdb_extension"), recursive=True)
        if found:
            return found[0]
    raise SystemExit(f"no .duckdb_extension file in {package}")


def load_extension(con, path, name):
    # DuckDB derives the entry point from the file name: `postgres_scanner` and
    # `sqlite_scanner` are the extensions' real names.
    target = os.path.join(tempfile.gettempdir(), "weft-duckdb-ext", f"{name}.duckdb_extension")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.exists(target):
        shutil.copy(path, target)
    con.execute(f"LOAD '{target}'")


def connect(threads):
    """A DuckDB connection that loads extensions only from files, with `threads` threads."""
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": True,
        }
    )
    con.execute(f"SET threads = {int(threads)}")
    return con


def main():
    job = json.load(sys.stdin)
    con = connect(job.get("threads", os.cpu_count() or 1))
    stores = set(job["tables"].values())
    if "postgres" in stores:
        load_extension(con, extension_file("duckdb_extension_postgres"), "postgres_scanner")
        conninfo = job["postgres"].replace("'", "''")
        con.execute(f"ATTACH '{conninfo}' AS pg (TYPE postgres, READ_ONLY)")
    if "sqlite" in stores:
        load_extension(con, extension_file("duckdb_extension_sqlite"), "sqlite_scanner")
        path = job["sqlite"].replace("'", "''")
        con.execute(f"ATTACH '{path}' AS lite (TYPE sqlite, READ_ONLY)")
    for table, store in job["tables"].items():
        if store == "parquet":
            path = os.path.join(job["parquet"], f"{table}.parquet").replace("'", "''")
            source = f"read_parquet('{path}')"
        elif store == "postgres":
            source = f"pg.public.{table}"
        else:
            source = f"lite.{table}"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM {source}")

    iface = job.get("iface", "lo")
    results = []
    for query in job["queries"]:
        n, sql = query["n"], query["sql"]
        try:
            # The first run is a warm-up, unless it is long enough to be its own (as in
            # weft-bench: SELF_WARMING).
            times, moved, first = [], [], True
            reset_peak_rss()
            while len(times) < int(job["runs"]):
                before, started = wire_bytes(iface), time.perf_counter()
                rows = con.execute(sql).fetchall()
                took = time.perf_counter() - started
                if not first or took >= float(job["self_warming"]):
                    times.append(took)
                    moved.append(wire_bytes(iface) - before)
                first = False
            results.append(
                {
                    "n": n,
                    "times": times,
                    "wire_bytes": int(statistics.median(moved)),
                    "peak_rss": peak_rss(),
                    "rows": [[text(v) for v in row] for row in rows],
                }
            )
        except Exception as e:  # a failed query is a result, not the end of the run
            results.append({"n": n, "error": str(e).splitlines()[0]})
        print(f"  duckdb q{n:02}", file=sys.stderr, flush=True)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
