-- Ordinary statements and the cases of the PostgreSQL-compatibility
-- issue, run on Freshet and PostgreSQL by tests/it/differential.rs.

CREATE TABLE t1 (a INT, b INT);
CREATE TABLE t2 (x INT, y INT);
INSERT INTO t1 VALUES (1, 0), (2, 2), (3, 5), (4, NULL);
INSERT INTO t2 VALUES (14, 0), (3, 2), (4, 2), (NULL, 5);

-- column names
SELECT a, b FROM t1 ORDER BY a;
SELECT a AS first, b AS "Second" FROM t1 ORDER BY 1;
SELECT a, a FROM t1 ORDER BY 1;
SELECT count(*), max(a), min(b) FROM t1;
SELECT a + 1, b * 2 FROM t1 ORDER BY 1;
SELECT CASE WHEN a > 2 THEN 'big' ELSE 'small' END FROM t1 ORDER BY 1;
SELECT CAST(a AS BIGINT) FROM t1 ORDER BY 1;
SELECT 1, 2.5, 'a';
SELECT 'a' || 'b' AS s, upper('x'), lower('Y'), length('abc');

-- subqueries
SELECT a, b, (SELECT max(x) FROM t2 WHERE t2.y = t1.b) AS m FROM t1 ORDER BY a;
SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b) AS c FROM t1 ORDER BY a;
SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.y = t1.b) ORDER BY a;
SELECT a FROM t1 WHERE b IN (SELECT y FROM t2) ORDER BY a;
SELECT a FROM t1 WHERE b NOT IN (SELECT y FROM t2 WHERE y IS NOT NULL) ORDER BY a;
SELECT a FROM t1 WHERE b NOT IN (SELECT x FROM t2) ORDER BY a;

-- joins and aggregates
SELECT t1.a, t2.x FROM t1 JOIN t2 ON t1.b = t2.y ORDER BY 1, 2;
SELECT t1.a, t2.x FROM t1 LEFT JOIN t2 ON t1.b = t2.y ORDER BY 1, 2;
SELECT t1.a, t2.x FROM t1 FULL JOIN t2 ON t1.b = t2.y ORDER BY 1, 2;
SELECT y, count(*), sum(x), count(x) FROM t2 GROUP BY y ORDER BY y;
SELECT b, count(*) FROM t1 GROUP BY b HAVING count(*) > 0 ORDER BY b NULLS FIRST;
SELECT count(DISTINCT y) FROM t2;

-- integer overflow
SELECT 9223372036854775807 + 1;
SELECT 2147483647::int + 1::int;

-- division
SELECT 7 / 2, 7 % 3, -7 / 2;
SELECT 1 / 0;

-- writes
INSERT INTO t1 SELECT v, v FROM (VALUES (9)) s(v);
SELECT a, b FROM t1 WHERE a = 9;
UPDATE t1 SET b = b + 1 WHERE a = 9;
SELECT a, b FROM t1 WHERE a = 9;
DELETE FROM t1 WHERE a = 9;
SELECT count(*) FROM t1;

-- errors
SELECT nope FROM t1;
SELECT * FROM nowhere;
SELEC 1;
INSERT INTO t1 VALUES ('x', 1);

-- types and values the issue lists
SELECT avg(a) FROM t1;
SELECT sum(a) FROM t1;
SELECT pg_typeof(1);
SELECT length('\x0102'::bytea);
SELECT interval '21 days 23:59:59';
SELECT '2020-04-15 12:02'::timestamp;
SELECT 'NaN'::numeric;
SELECT current_user;
SELECT session_user;

-- dates, times and intervals
SELECT timestamp '2020-04-15 12:02';
SELECT '\x0102'::bytea, length('\x0102'::bytea);
SELECT interval '1 year 2 mons -3 days', interval '@ 1 day ago', interval '-00:00:04.5';
SELECT '1.5 hours'::interval, interval '-1 year';
SELECT date '2020-01-01' + interval '1 day 2 hours';
SELECT interval '3 hours' + date '2020-01-01';
SELECT date '2020-01-01' - interval '1 hour';
SELECT '2020-01-01 10:00'::timestamp - '2019-12-10 10:00:01'::timestamp;
SELECT '2019-12-10 10:00:01'::timestamp - '2020-01-01 10:00'::timestamp;
SELECT ('2020-01-01 10:00'::timestamp - '2019-12-10 10:00:01'::timestamp) > interval '7 days';
SELECT interval '2 hours' > interval '90 minutes';
SELECT interval '1 day' < interval '25 hours';
CREATE TABLE ev (id INT, ts TIMESTAMP);
INSERT INTO ev VALUES (1, '2020-01-01 00:00'), (2, '2020-01-22 23:59:59'), (3, '2020-01-23 00:00:00');
SELECT b.id, b.ts - a.ts AS gap FROM ev a JOIN ev b ON b.id = a.id + 1 ORDER BY b.id;
SELECT b.id FROM ev a JOIN ev b ON b.id = a.id + 1 WHERE b.ts - a.ts > interval '7 days' ORDER BY b.id;

-- literal types, precedence and folding
SELECT * FROM (VALUES (1, 2.5)) v(a, b);
VALUES (1), (2147483648);
VALUES (1), (NULL);
SELECT sum(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM (VALUES (1), (2), (3)) t(x) ORDER BY 1;
SELECT x + 2147483647 FROM (VALUES (1)) t(x);
SELECT 1 AS c UNION SELECT NULL::int + a FROM t1 ORDER BY 1;
SELECT a IS DISTINCT FROM b AND a > 1 AS x FROM t1 ORDER BY a;
SELECT a FROM t1 WHERE a IS NOT DISTINCT FROM b OR a = 4 ORDER BY a;
SELECT b + (NULL::int * (a * 2147483647)) AS x FROM t1 ORDER BY a;
SELECT b.ts + (b.ts - a.ts) FROM ev a JOIN ev b ON b.id = a.id + 1 ORDER BY 1;
SELECT 1 INTERSECT ALL SELECT 1;
SELECT 2 EXCEPT ALL SELECT 1;

-- varchar columns are varchar, through joins, groupings and subqueries
CREATE TABLE vc (id INT, name VARCHAR(10), code VARCHAR);
INSERT INTO vc VALUES (1, 'ab', 'x'), (2, NULL, 'y');
SELECT name, code FROM vc ORDER BY id;
SELECT name, count(*) FROM vc GROUP BY name ORDER BY 1;
SELECT v.name, t1.a FROM vc v JOIN t1 ON v.id = t1.a ORDER BY 2;
SELECT * FROM (SELECT name AS n FROM vc) s ORDER BY 1;
SELECT DISTINCT code FROM vc ORDER BY 1;
SELECT name || 'x' FROM vc ORDER BY 1;
SELECT upper(name) FROM vc ORDER BY 1;
SELECT COALESCE(name, code) FROM vc ORDER BY 1;
SELECT max(name) FROM vc;
SELECT name FROM vc UNION SELECT code FROM vc ORDER BY 1;

-- NOT IN of a value without columns (the filter was lost: every row)
SELECT a FROM t1 WHERE NULL::int NOT IN (SELECT x FROM t2) ORDER BY a;
SELECT a FROM t1 WHERE 3 NOT IN (SELECT x FROM t2 WHERE x IS NOT NULL) ORDER BY a;
-- NOT IN of an expression the optimizer folds to a constant (every row came back)
SELECT a FROM t1 WHERE COALESCE(10, a) NOT IN (SELECT x FROM t2) ORDER BY a;
SELECT a FROM t1 WHERE COALESCE(10, a) NOT IN (SELECT x FROM t2 WHERE x IS NOT NULL) ORDER BY a;
SELECT a FROM t1 WHERE a + 10 NOT IN (SELECT x FROM t2 WHERE x IS NOT NULL) ORDER BY a;
SELECT a FROM t1 WHERE 14 NOT IN (SELECT x FROM t2 WHERE x IS NOT NULL) ORDER BY a;
SELECT a FROM t1 WHERE NULL::int NOT IN (SELECT x FROM t2 WHERE false) ORDER BY a;

-- a filter above an outer join naming both sides' same-named columns (it
-- was pushed into the preserved side with the other side's column bound
-- to its own: rows came back that PostgreSQL drops)
CREATE TABLE oj1 (id INT, a INT, ts TIMESTAMP);
CREATE TABLE oj2 (id INT, y INT, s TEXT, ts TIMESTAMP);
INSERT INTO oj1 VALUES (1, 0, '2020-01-01'), (6, 5, '2020-01-01'), (8, -7, '2020-03-01'), (11, 1, '2020-01-01 00:00:00.25');
INSERT INTO oj2 VALUES (2, 1, 'A', '2020-01-15'), (6, -7, '', '2021-01-01'), (7, 2, 'hello world', '2020-02-29'), (8, 0, 'abc', '2020-01-01'), (9, NULL, 'Hello World', '2022-07-04');
SELECT oj2.id, oj1.id FROM oj1 FULL JOIN oj2 ON oj1.a = oj2.y AND oj1.ts < oj2.ts WHERE (oj2.s LIKE 'H%d' OR 2 BETWEEN oj2.y AND oj1.id) ORDER BY 1, 2;
SELECT oj2.id, oj1.id FROM oj1 RIGHT JOIN oj2 ON oj1.a = oj2.y WHERE 2 BETWEEN oj2.y AND oj1.id ORDER BY 1, 2;

-- a null-safe join key whose one side is never NULL
-- (its NULLs were filled in with 0 and matched the 0 of the other side)
SELECT oj1.id, oj2.id FROM oj1 CROSS JOIN oj2 WHERE oj2.y IS NOT DISTINCT FROM COALESCE(oj1.a, 5) ORDER BY 1, 2;
SELECT oj1.id, oj2.id FROM oj1 JOIN oj2 ON CAST(oj2.y AS TEXT) IS NOT DISTINCT FROM COALESCE(CAST(oj1.a AS TEXT), '') ORDER BY 1, 2;

-- a CASE whose NULL branch is never taken, under DISTINCT (the planner's
-- two nullabilities disagreed: an internal error)
SELECT DISTINCT CASE WHEN (oj2.y >= -7 AND oj2.s < NULL::text) THEN (1 - NULL::int) ELSE -6 END AS c1 FROM oj2;

-- a correlated subquery whose select list reads the outer row, under CASE
-- (it was refused; SQLAlchemy's column reflection sends one)
SELECT oj1.id, CASE WHEN oj1.id > 1 THEN (SELECT oj1.a + oj2.y FROM oj2 WHERE oj2.id = oj1.id) END AS v FROM oj1 ORDER BY 1;
SELECT oj1.id, CASE WHEN oj1.id > 1 THEN (SELECT oj1.a IS NULL FROM oj2 WHERE oj2.y = oj1.a + 100) END AS v FROM oj1 ORDER BY 1;

-- ARRAY(subquery): ordered, correlated, empty
SELECT oj1.id, ARRAY(SELECT oj2.id FROM oj2 WHERE oj2.y >= oj1.a ORDER BY oj2.id DESC) AS ids FROM oj1 ORDER BY 1;
SELECT ARRAY(SELECT s FROM oj2 WHERE s <> '' ORDER BY 1) AS names, ARRAY(SELECT y FROM oj2 WHERE false) AS none;

-- columns of a WITH query or a FROM subquery without a column list are
-- named as a result's are (they were DataFusion's `Int64(1)`)
WITH w AS (SELECT 1, 0::bigint, upper('a'), oj1.a + 1 FROM oj1 WHERE oj1.id = 1) SELECT * FROM w;
WITH w AS (SELECT count(*) FROM oj1) SELECT count FROM w;
SELECT * FROM (SELECT 'x', 2.5, oj1.id FROM oj1 WHERE oj1.id = 6) s;
SELECT s.sum FROM (SELECT sum(a) FROM oj1) s;

-- an array cast to text is PostgreSQL's array text (it was Arrow's `[1, 2]`)
SELECT CAST(ARRAY[1,2] AS TEXT), ARRAY['a b', NULL, '', 'x', 'null', 'q"x', 'back\slash']::text;
SELECT ARRAY[1.5, NULL]::text, ARRAY[[1,2],[3,4]]::text, ARRAY[true,false]::text;
SELECT ARRAY['2020-01-01 10:00'::timestamp]::text, ARRAY[1.5::float8, 0.1::float8]::text, ARRAY[DATE '2021-01-02']::text, (ARRAY[1,2]::text) || 'x';
SELECT oj2.id, ARRAY[oj2.s, oj2.y::text]::text AS a FROM oj2 ORDER BY 1;

-- table storage parameters: checked as PostgreSQL checks them (then
-- without effect in Freshet)
CREATE TABLE rel1 (a INT) WITH (fillfactor = 5);
CREATE TABLE rel1 (a INT) WITH (fillfactor = 'abc');
CREATE TABLE rel1 (a INT) WITH (autovacuum_enabled = 'maybe');
CREATE TABLE rel1 (a INT) WITH (toast.autovacuum_analyze_threshold = 5);
CREATE TABLE rel1 (a INT) WITH (autovacuum_vacuum_scale_factor = 200);
CREATE TABLE rel1 (a INT) WITH (autovacuum_foo = 1);
CREATE TABLE rel1 (a INT) WITH (fillfactor = 70, toast.autovacuum_enabled = false, vacuum_index_cleanup = auto);
SELECT count(*) FROM rel1;

-- binary strings: encode/decode formats, conversions between encodings
SELECT encode('\x0102ff5c00'::bytea, 'escape'), encode('abc'::bytea, 'base64'), encode('\x00ff'::bytea, 'hex');
SELECT decode('YWJj', 'base64'), decode('0aff', 'hex'), decode('a\000b\\', 'escape');
SELECT encode(decode(repeat('ab', 60), 'hex'), 'base64');
SELECT encode(NULL::bytea, 'hex'), decode(NULL, 'hex'), encode('a'::bytea, NULL);
SELECT convert_from('\x68c3a9'::bytea, 'UTF8'), convert_from('\xe9'::bytea, 'LATIN1'), convert_to('hé', 'LATIN1'), convert_to('hé', 'utf8');
SELECT convert_from('\xff'::bytea, 'UTF8');
SELECT convert_from('\x61'::bytea, 'NOPE');
SELECT convert_to('€', 'LATIN1');
SELECT encode('a'::bytea, 'foo');
SELECT decode('abc', 'hex');
SELECT decode('zz', 'hex');
SELECT decode('YQ', 'base64');
SELECT decode('YQ==YQ==', 'base64');
SELECT decode('a\x', 'escape');
SELECT length('\x0102'::bytea), length(decode('0102', 'hex'));

-- text literals compared with dates and timestamps, in PostgreSQL's forms
SELECT id FROM ev WHERE ts > '2020-01-22 23:59' ORDER BY id;
SELECT id FROM ev WHERE ts BETWEEN '2020-01-01' AND '2020-01-22 23:59:59' ORDER BY id;
SELECT id FROM ev WHERE ts::date = '2020-01-22' ORDER BY id;
SELECT id FROM ev WHERE ts < 'January 2, 2020 10:00' ORDER BY id;
SELECT id FROM ev WHERE ts > 'not a time' ORDER BY id;
