#!/usr/bin/env python3
"""Make the 22 TPC-H queries and their expected answers at scale factor 0.01.

What it does, in order (it prints each step):

1. Generates TPC-H SF 0.01 as Parquet with `tpchgen-cli` (one `<table>.parquet` per
   table) into DATA_DIR, unless the eight files are already there.
2. Takes the 22 query texts from DuckDB's tpch extension (`tpch_queries()`), drops the
   trailing semicolon and writes them to `queries/qNN.sql` (unqualified table names,
   one statement, ending with a newline). No query text is edited (see EDITS).
3. Runs each query file in DuckDB, single-threaded, over views on the Parquet files and
   writes `answers/qNN.tsv`: a header of column names, then one line a row, values
   separated by tabs; NULL as `NULL`, dates as YYYY-MM-DD, decimals as DuckDB gives them
   (Python `Decimal`, never in exponent form), doubles as Python `repr()`.
4. Verifies the answers independently in another DuckDB connection: generates the same
   data with DuckDB's own generator (`CALL dbgen(sf=0.01)`), runs the queries there and
   compares with the Parquet-based answers (exactly, then numerically), and compares the
   answers with DuckDB's stored answers (`tpch_answers()`, scale factor 0.01): numbers
   within 0.01 after rounding to 2 places, strings and dates exactly.
5. Prints the Arrow schema of each Parquet file.

It exits non-zero if any answer fails verification.

Rerun (from anywhere; the venv is made as described in the project's notes: duckdb==1.5.5,
duckdb-extension-tpch==1.5.5, duckdb-extension-parquet==1.5.5, tpchgen-cli 4.x, pyarrow):

    ~/.cache/weft/venv-bench/bin/python integration-tests/tpch/make_answers.py

Environment: TPCH_DATA_DIR overrides DATA_DIR (default /tmp/tpch-sf0.01);
TPCH_REGENERATE=1 regenerates the Parquet files even if they exist.
"""

import datetime
import decimal
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES_DIR = os.path.join(HERE, "queries")
ANSWERS_DIR = os.path.join(HERE, "answers")
DATA_DIR = os.environ.get("TPCH_DATA_DIR", "/tmp/tpch-sf0.01")
SCALE_FACTOR = 0.01
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]

# Changes to DuckDB's query texts, as {query number: [(old, new), ...]}. None are needed:
# the texts are standard SQL (CAST(... AS date), date '...', extract(year FROM ...),
# substring(... FROM 1 FOR 2), a derived-column list in Q13, a CTE in Q15).
EDITS: dict[int, list[tuple[str, str]]] = {}


def step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def extension_file(package: str, name: str) -> str | None:
    """The `<name>.duckdb_extension` file shipped in the wheel `package`, copied under
    that name if the wheel calls it otherwise (DuckDB takes the entry point from the file
    name). None if the package is not installed."""
    try:
        mod = __import__(package)
    except ImportError:
        return None
    files = glob.glob(os.path.join(os.path.dirname(mod.__file__), "**", "*.duckdb_extension*"),
                      recursive=True)
    if not files:
        return None
    path = files[0]
    if os.path.basename(path) != f"{name}.duckdb_extension":
        copy = os.path.join(tempfile.mkdtemp(), f"{name}.duckdb_extension")
        shutil.copyfile(path, copy)
        path = copy
    return path


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the tpch extension (and parquet) loaded from the wheels,
    never downloaded, single-threaded so that sums of doubles come out the same each run."""
    con = duckdb.connect(config={"autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false",
                                 "threads": "1"})
    loaded = dict(con.execute(
        "SELECT extension_name, loaded FROM duckdb_extensions()").fetchall())
    if not loaded.get("parquet"):
        path = extension_file("duckdb_extension_parquet", "parquet")
        if path is None:
            sys.exit("parquet is neither built into duckdb nor installed as a wheel")
        con.execute(f"LOAD '{path}'")
    path = extension_file("duckdb_extension_tpch", "tpch")
    if path is None:
        sys.exit("the wheel duckdb-extension-tpch is not installed")
    con.execute(f"LOAD '{path}'")
    return con


def generate_data() -> None:
    files = [os.path.join(DATA_DIR, f"{t}.parquet") for t in TABLES]
    if all(os.path.exists(f) for f in files) and os.environ.get("TPCH_REGENERATE") != "1":
        step(f"Parquet data already in {DATA_DIR}")
        return
    cli = os.path.join(os.path.dirname(sys.executable), "tpchgen-cli")
    if not os.path.exists(cli):
        cli = "tpchgen-cli"
    version = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout.strip()
    step(f"generating SF {SCALE_FACTOR} Parquet with {version} into {DATA_DIR}")
    os.makedirs(DATA_DIR, exist_ok=True)
    subprocess.run([cli, "parquet", "--scale-factor", str(SCALE_FACTOR), "--output-dir", DATA_DIR,
                    "--overwrite", "--no-progress", "--num-threads", "1"], check=True)


def write_queries(con) -> dict[int, str]:
    step(f"writing the 22 queries from tpch_queries() to {QUERIES_DIR}")
    os.makedirs(QUERIES_DIR, exist_ok=True)
    queries = {}
    for n, text in con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall():
        for old, new in EDITS.get(n, []):
            assert old in text, f"Q{n}: edit target {old!r} not found"
            text = text.replace(old, new)
        text = text.strip()
        text = text[:-1].rstrip() if text.endswith(";") else text
        assert ";" not in text, f"Q{n} has more than one statement"
        with open(os.path.join(QUERIES_DIR, f"q{n:02}.sql"), "w") as f:
            f.write(text + "\n")
        queries[n] = text
    assert sorted(queries) == list(range(1, 23))
    return queries


def cell(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    s = str(v)
    assert "\t" not in s and "\n" not in s, f"value {s!r} cannot go in a TSV line"
    return s


def run(con, sql: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(sql)
    return [d[0] for d in cur.description], cur.fetchall()


def to_tsv(columns, rows) -> str:
    return "".join("\t".join(line) + "\n"
                   for line in [columns] + [[cell(v) for v in r] for r in rows])


def parquet_answers(queries) -> dict[int, str]:
    step(f"running the queries in DuckDB {duckdb.__version__} over the Parquet files; "
         f"writing {ANSWERS_DIR}/qNN.tsv")
    con = connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM "
                    f"read_parquet('{os.path.join(DATA_DIR, t + '.parquet')}')")
    os.makedirs(ANSWERS_DIR, exist_ok=True)
    answers = {}
    for n, sql in queries.items():
        columns, rows = run(con, sql)
        answers[n] = to_tsv(columns, rows)
        with open(os.path.join(ANSWERS_DIR, f"q{n:02}.tsv"), "w") as f:
            f.write(answers[n])
        print(f"    q{n:02}: {len(rows)} rows", flush=True)
    return answers


NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

# The free-text columns. DuckDB's dbgen makes them from another random text stream than
# TPC's reference dbgen (a smaller text buffer and another uniform-integer routine), so
# they differ from tpchgen-cli's, which follows the reference byte for byte; every other
# column is the same. KEYS identify a row of each table.
FREE_TEXT = {"region": ["r_comment"], "nation": ["n_comment"],
             "supplier": ["s_address", "s_comment"], "customer": ["c_address", "c_comment"],
             "part": ["p_comment"], "partsupp": ["ps_comment"], "orders": ["o_comment"],
             "lineitem": ["l_comment"]}
KEYS = {"region": ["r_regionkey"], "nation": ["n_nationkey"], "supplier": ["s_suppkey"],
        "customer": ["c_custkey"], "part": ["p_partkey"], "partsupp": ["ps_partkey", "ps_suppkey"],
        "orders": ["o_orderkey"], "lineitem": ["l_orderkey", "l_linenumber"]}


def same(a: str, b: str) -> bool:
    """Strings and dates exactly; numbers within 0.01 after rounding to 2 places."""
    if a == b:
        return True
    if NUMBER.match(a) and NUMBER.match(b):
        return abs(round(float(a), 2) - round(float(b), 2)) <= 0.01 + 1e-9
    return False


def first_difference(want: list[list[str]], got: list[list[str]]) -> str | None:
    if len(want) != len(got):
        return f"{len(got)} rows, expected {len(want)}"
    for i, (w, g) in enumerate(zip(want, got)):
        if len(w) != len(g):
            return f"row {i + 1}: {len(g)} columns, expected {len(w)}"
        for c, (x, y) in enumerate(zip(w, g)):
            if not same(x, y):
                return f"row {i + 1}, column {c + 1}: {y!r}, expected {x!r}"
    return None


def body(tsv: str, sep: str = "\t") -> list[list[str]]:
    """The rows of an answer without its header. In tpch_answers() (sep "|") an empty
    value is NULL."""
    lines = tsv.split("\n")[1:]
    if lines and lines[-1] == "":  # the final newline; an empty line before it is a row
        lines.pop()
    rows = [line.split(sep) for line in lines]
    if sep == "|":
        rows = [[v if v != "" else "NULL" for v in r] for r in rows]
    return rows


def verify(queries, answers) -> bool:
    """Checks the answers against DuckDB's own generator and stored answers. Passes when
    (1) every column but the free-text ones is the same in dbgen's data as in the Parquet
    files, (2) the queries on dbgen's data give DuckDB's stored answers, and (3) the
    queries on dbgen's data with the free-text columns taken from the Parquet files give
    the answers written. The answers on plain dbgen data are compared too, for the record:
    they may differ where a query shows or filters on free text."""
    step(f"verifying: CALL dbgen(sf={SCALE_FACTOR}) in a separate DuckDB connection")
    con = connect()
    con.execute(f"CALL dbgen(sf={SCALE_FACTOR})")
    ok = True
    con.execute("CREATE SCHEMA pq")
    con.execute("CREATE SCHEMA hybrid")
    for t in TABLES:
        con.execute(f"CREATE VIEW pq.{t} AS SELECT * FROM "
                    f"read_parquet('{os.path.join(DATA_DIR, t + '.parquet')}')")
        columns = [r[0] for r in con.execute(f"DESCRIBE main.{t}").fetchall()]
        fixed = ", ".join(c for c in columns if c not in FREE_TEXT[t])
        n_d, n_p = (con.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0]
                    for s in ("main", "pq"))
        diff = sum(con.execute(f"SELECT count(*) FROM (SELECT {fixed} FROM {a}.{t} "
                               f"EXCEPT ALL SELECT {fixed} FROM {b}.{t})").fetchone()[0]
                   for a, b in (("main", "pq"), ("pq", "main")))
        text = [f"{c}: {con.execute(f'SELECT count(*) FROM main.{t} d JOIN pq.{t} p USING ({chr(44).join(KEYS[t])}) WHERE d.{c} <> p.{c}').fetchone()[0]}"
                for c in FREE_TEXT[t]]
        print(f"    {t}: {n_d} rows in dbgen, {n_p} in Parquet; other columns: "
              f"{'identical' if diff == 0 and n_d == n_p else f'{diff} rows DIFFER'}; "
              f"free text differing: {', '.join(text)}")
        ok = ok and diff == 0 and n_d == n_p
        replace = ", ".join(f"p.{c} AS {c}" for c in FREE_TEXT[t])
        con.execute(f"CREATE TABLE hybrid.{t} AS SELECT d.* REPLACE ({replace}) "
                    f"FROM main.{t} d JOIN pq.{t} p USING ({', '.join(KEYS[t])})")
        assert con.execute(f"SELECT count(*) FROM hybrid.{t}").fetchone()[0] == n_d

    stored = dict(con.execute("SELECT query_nr, answer FROM tpch_answers() "
                              f"WHERE scale_factor = {SCALE_FACTOR}").fetchall())
    if not stored:
        factors = [r[0] for r in con.execute(
            "SELECT DISTINCT scale_factor FROM tpch_answers() ORDER BY 1").fetchall()]
        print(f"    tpch_answers() has no scale factor {SCALE_FACTOR}, only {factors}")

    def on(schema, sql):
        con.execute(f"SET search_path = '{schema}'")
        return to_tsv(*run(con, sql))

    print("    A: dbgen data vs tpch_answers()   B: dbgen data + Parquet free text vs answer "
          "written   C: plain dbgen data vs answer written   D: answer written vs tpch_answers()")
    for n, sql in queries.items():
        mine = body(answers[n])
        dbgen = on("main", sql)
        hybrid = on("hybrid", sql)
        a = first_difference(body(stored[n], "|"), body(dbgen)) if n in stored else "none stored"
        b = first_difference(mine, body(hybrid))
        b_exact = hybrid == answers[n]
        c = first_difference(mine, body(dbgen))
        d = first_difference(body(stored[n], "|"), mine) if n in stored else "none stored"
        ok = ok and a is None and b is None
        fmt = lambda x: "match" if x is None else f"DIFFERS ({x})"
        print(f"    q{n:02} ({len(mine)} rows): A {fmt(a)}; "
              f"B {'identical' if b_exact else fmt(b)}; C {fmt(c)}; D {fmt(d)}", flush=True)
    return ok


def print_schemas() -> None:
    step("column types of the Parquet files")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        con = connect()
        for t in TABLES:
            path = os.path.join(DATA_DIR, t + ".parquet")
            print(f"    {t}:", ", ".join(f"{r[0]} {r[1]}" for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()))
        return
    for t in TABLES:
        path = os.path.join(DATA_DIR, t + ".parquet")
        schema = pq.read_schema(path)
        rows = pq.ParquetFile(path).metadata.num_rows
        print(f"    {t} ({rows} rows):", ", ".join(
            f"{f.name} {f.type}{'' if f.nullable else ' not null'}" for f in schema))


def main() -> None:
    generate_data()
    queries = write_queries(connect())
    answers = parquet_answers(queries)
    ok = verify(queries, answers)
    print_schemas()
    step("all answers verified" if ok else "SOME ANSWERS FAILED VERIFICATION")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
