"""Freshet against the Python drivers people point at PostgreSQL: psycopg2,
psycopg 3 and SQLAlchemy 2 with both, and pandas over SQLAlchemy. Run by tests/it/clients.rs against a
fresh server: `python3 tests/clients/python_clients.py PORT`. Each check
prints ok / FAIL / gap; a gap is a known missing feature (listed in
KNOWN_GAPS and in docs/clients.md) that does not fail the run, and a gap
that starts passing is reported so the list is kept true. Exit status 2
means a driver is not installed (the Rust test then skips loudly).
"""
import sys

try:
    import psycopg2
    import psycopg
    import sqlalchemy as sa
    import pandas as pd
except ImportError as e:
    print(f"missing driver: {e}")
    sys.exit(2)

# Known missing features: check name -> (why, a fragment of the error it
# fails with; failing with another error is a failure)
KNOWN_GAPS = {}

port = int(sys.argv[1])
dsn = f"host=127.0.0.1 port={port} user=freshet dbname=freshet"
results = []
def check(name, f):
    try:
        f()
    except Exception as e:
        if name in KNOWN_GAPS and KNOWN_GAPS[name][1] in repr(e):
            print("gap ", name, "-", KNOWN_GAPS[name][0])
            results.append((name, None))
        else:
            print("FAIL", name, "-", repr(e)[:500])
            results.append((name, e))
        return
    if name in KNOWN_GAPS:
        print("ok  ", name, "(listed as a gap: take it off KNOWN_GAPS)")
    else:
        print("ok  ", name)
    results.append((name, None))

def p2_basic():
    c = psycopg2.connect(dsn); cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS p2 CASCADE")
    cur.execute("CREATE TABLE p2 (id INT PRIMARY KEY, name TEXT)")
    c.commit()
    cur.execute("INSERT INTO p2 VALUES (%s, %s)", (1, "a")); c.commit()
    cur.execute("INSERT INTO p2 VALUES (%s, %s)", (2, "b")); c.rollback()
    cur.execute("SELECT id, name FROM p2 ORDER BY id"); assert cur.fetchall() == [(1, "a")], "rollback kept a row"
    c.close()
check("psycopg2 commit/rollback", p2_basic)
def p2_copy():
    import io
    c = psycopg2.connect(dsn); cur = c.cursor()
    cur.copy_expert("COPY p2 FROM STDIN", io.StringIO("3\tc\n4\td\n")); c.commit()
    buf = io.StringIO(); cur.copy_expert("COPY p2 TO STDOUT", buf)
    assert sorted(buf.getvalue().splitlines()) == ["1\ta", "3\tc", "4\td"], buf.getvalue()
    c.close()
check("psycopg2 copy_expert both ways", p2_copy)
def p2_named():
    c = psycopg2.connect(dsn)
    cur = c.cursor(name="named"); cur.itersize = 2
    cur.execute("SELECT id FROM p2 ORDER BY id")
    assert [r[0] for r in cur] == [1, 3, 4]
    c.commit(); c.close()
check("psycopg2 named cursor", p2_named)
def p2_executemany():
    c = psycopg2.connect(dsn); cur = c.cursor()
    cur.executemany("INSERT INTO p2 VALUES (%s, %s)", [(10, "x"), (11, "y")]); c.commit()
    cur.execute("SELECT count(*) FROM p2"); assert cur.fetchone()[0] == 5
    c.close()
check("psycopg2 executemany", p2_executemany)

def p3_basic():
    with psycopg.connect(dsn) as c:
        with c.transaction():
            c.execute("INSERT INTO p2 VALUES (%s, %s)", (20, "p3"))
            with c.transaction():   # savepoint
                c.execute("INSERT INTO p2 VALUES (%s, %s)", (21, "inner"))
        assert c.execute("SELECT count(*) FROM p2 WHERE id >= 20").fetchone()[0] == 2
        try:
            with c.transaction():
                c.execute("INSERT INTO p2 VALUES (%s, %s)", (22, "gone"))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert c.execute("SELECT count(*) FROM p2 WHERE id = 22").fetchone()[0] == 0
check("psycopg3 transactions and savepoints", p3_basic)

def p3_null_parameters():
    # None goes as an untyped NULL: every later parameter keeps its place
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO p2 VALUES (%s::INT, %s::VARCHAR)", (23, None))
        r = c.execute("SELECT %s::VARCHAR, %s::INT, %s, %s::TEXT", (None, 5, None, "x")).fetchone()
        assert r == (None, 5, None, "x"), r
        assert c.execute("SELECT name FROM p2 WHERE id = 23").fetchone() == (None,)
        c.execute("DELETE FROM p2 WHERE id = 23")
check("psycopg3 NULL parameters", p3_null_parameters)
def p3_copy():
    with psycopg.connect(dsn) as c:
        with c.cursor().copy("COPY p2 (id, name) FROM STDIN") as cp:
            cp.write_row((30, "copied")); cp.write_row((31, None))
        rows = []
        with c.cursor().copy("COPY (SELECT id, name FROM p2 WHERE id >= 30 ORDER BY id) TO STDOUT") as cp:
            for row in cp.rows():
                rows.append(row)
        assert rows == [("30", "copied"), ("31", None)], rows
check("psycopg3 copy both ways", p3_copy)
def p3_binary_copy():
    import datetime, decimal
    with psycopg.connect(dsn) as c:
        c.execute("DROP TABLE IF EXISTS p3bin")
        c.execute("CREATE TABLE p3bin (b BOOL, i BIGINT, r DOUBLE PRECISION, n NUMERIC(12,3), t TEXT, y BYTEA, ts TIMESTAMP, iv INTERVAL)")
        row = (True, -3_000_000_000, -2.25, decimal.Decimal("-12345.678"), "h\u00e9llo", b"\x00\xff",
               datetime.datetime(2020, 1, 2, 3, 4, 5, 678901), datetime.timedelta(days=2, seconds=3661))
        with c.cursor().copy("COPY p3bin FROM STDIN (FORMAT binary)") as cp:
            cp.set_types(["bool", "int8", "float8", "numeric", "text", "bytea", "timestamp", "interval"])
            cp.write_row(row)
            cp.write_row((None,) * 8)
        got = c.execute("SELECT * FROM p3bin ORDER BY i").fetchall()
        assert got == [row, (None,) * 8], got
        # and back out in binary, read with the same types
        with c.cursor().copy("COPY (SELECT * FROM p3bin ORDER BY i) TO STDOUT (FORMAT binary)") as cp:
            cp.set_types(["bool", "int8", "float8", "numeric", "text", "bytea", "timestamp", "interval"])
            out = list(cp.rows())
        assert out == [row, (None,) * 8], out
        with c.cursor().copy("COPY (SELECT 7::int4, 1.5::real, DATE '2021-03-04', '{\"a\": [1, 2]}'::jsonb) TO STDOUT (FORMAT binary)") as cp:
            cp.set_types(["int4", "float4", "date", "jsonb"])
            out = list(cp.rows())
        assert out == [(7, 1.5, datetime.date(2021, 3, 4), {"a": [1, 2]})], out
check("psycopg3 binary copy both ways", p3_binary_copy)
def p3_server_cursor():
    with psycopg.connect(dsn) as c:
        with c.cursor(name="srv") as cur:
            cur.itersize = 2
            cur.execute("SELECT id FROM p2 WHERE id < 5 ORDER BY id")
            assert [r[0] for r in cur] == [1, 3, 4]
check("psycopg3 server-side cursor", p3_server_cursor)
def p3_typeinfo():
    from psycopg.types import TypeInfo
    with psycopg.connect(dsn) as c:
        t = TypeInfo.fetch(c, "text"); assert t is not None and t.oid == 25
check("psycopg3 TypeInfo.fetch", p3_typeinfo)
def p3_cancel():
    import threading, time
    with psycopg.connect(dsn) as c:
        threading.Timer(0.5, c.cancel).start()
        t = time.time()
        try:
            c.execute("SELECT count(*) FROM generate_series(1, 2000000000)")
            raise AssertionError("not canceled")
        except psycopg.errors.QueryCanceled:
            pass
        assert time.time() - t < 10
check("psycopg3 cancel", p3_cancel)

for drv in ["postgresql+psycopg2", "postgresql+psycopg"]:
    url = f"{drv}://freshet@127.0.0.1:{port}/freshet"
    def sa_inspect(url=url):
        e = sa.create_engine(url)
        with e.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
        insp = sa.inspect(e)
        assert "p2" in insp.get_table_names(), insp.get_table_names()
        cols = [c["name"] for c in insp.get_columns("p2")]
        assert cols == ["id", "name"], cols
        pk = insp.get_pk_constraint("p2"); assert pk["constrained_columns"] == ["id"], pk
        assert pk["name"] == "p2_pkey", pk
        assert insp.get_indexes("p2") == [], insp.get_indexes("p2")
        assert insp.get_unique_constraints("p2") == [], insp.get_unique_constraints("p2")
        t = sa.Table("p2", sa.MetaData(), autoload_with=e)
        with e.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar(); assert n >= 5
    check(f"sqlalchemy {drv} reflection", sa_inspect)
    def sa_views(url=url):
        e = sa.create_engine(url)
        with e.begin() as conn:
            conn.execute(sa.text("CREATE MATERIALIZED VIEW IF NOT EXISTS p2_count AS SELECT count(*) AS n FROM p2"))
            conn.execute(sa.text("CREATE VIEW IF NOT EXISTS p2_names AS SELECT name FROM p2"))
        insp = sa.inspect(e)
        assert "p2_count" in insp.get_materialized_view_names(), insp.get_materialized_view_names()
        assert "p2_names" in insp.get_view_names(), insp.get_view_names()
        assert "SELECT" in insp.get_view_definition("p2_names")
    check(f"sqlalchemy {drv} views", sa_views)
    def sa_orm(url=url):
        from sqlalchemy.orm import Session
        e = sa.create_engine(url)
        t = sa.Table("p2", sa.MetaData(), autoload_with=e)
        with Session(e) as s:
            s.execute(t.insert().values(id=50 + len(url) % 7, name="orm")); s.rollback()
        with e.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.name == "orm")).scalar() == 0
    check(f"sqlalchemy {drv} session rollback", sa_orm)
    def sa_returning(url=url):
        e = sa.create_engine(url)
        t = sa.Table("p2", sa.MetaData(), autoload_with=e)
        k = 60 + len(url) % 7
        with e.begin() as conn:
            r = conn.execute(t.insert().values(id=k, name="ret").returning(t.c.id, t.c.name)).all()
            assert [tuple(x) for x in r] == [(k, "ret")], r
            r = conn.execute(t.update().where(t.c.id == k).values(name="ret2").returning(t.c.name)).all()
            assert [tuple(x) for x in r] == [("ret2",)], r
            r = conn.execute(t.delete().where(t.c.id == k).returning(t.c.id)).all()
            assert [tuple(x) for x in r] == [(k,)], r
    check(f"sqlalchemy {drv} RETURNING", sa_returning)
    def pandas_sql(url=url, drv=drv):
        e = sa.create_engine(url)
        df = pd.read_sql_table("p2", e)
        assert list(df.columns) == ["id", "name"], df.columns
        assert len(df) >= 5 and str(df["id"].dtype) == "int64", df.dtypes
        q = pd.read_sql_query("SELECT id, name FROM p2 WHERE id < 4 ORDER BY id", e)
        assert q["id"].tolist() == [1, 3], q
        name = "frame_" + drv.split("+")[1]
        out = pd.DataFrame({"k": [1, 2, 3], "x": [0.5, None, 2.5], "s": ["a", "b", None],
                            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
        out.to_sql(name, e, index=False)
        back = pd.read_sql_table(name, e)
        assert back["k"].tolist() == [1, 2, 3], back
        assert back["s"].tolist()[:2] == ["a", "b"] and back["s"].isna().tolist()[2], back
        assert str(back["t"].dtype).startswith("datetime64"), back.dtypes
        out.to_sql(name, e, index=False, if_exists="append")
        assert len(pd.read_sql_table(name, e)) == 6
        out.to_sql(name, e, index=False, if_exists="replace")
        assert len(pd.read_sql_table(name, e)) == 3
    check(f"pandas over {drv}", pandas_sql)

failed = [n for n, e in results if e]
gaps = sum(1 for n, _ in results if n in KNOWN_GAPS)
print(f"{len(results) - len(failed)} of {len(results)} client checks pass or are known gaps ({gaps} listed as gaps)")
sys.exit(1 if failed else 0)
