-- jsonb values and operators, extract, timestamptz and text casts, run on
-- Freshet and PostgreSQL by tests/it/differential.rs.

CREATE TABLE docs (id INT, doc JSONB);
INSERT INTO docs VALUES
  (1, '{"kind": "click", "n": 2, "tags": ["a", "b"], "user": {"id": 7, "name": "ann"}}'),
  (2, '{"kind": "view", "n": 5, "tags": [], "user": {"id": 8}}'),
  (3, '{"kind": "click", "n": null, "extra": true}'),
  (4, '[1, 2, {"a": 3}]'),
  (5, NULL);

SELECT id, doc FROM docs ORDER BY id;
SELECT id, doc -> 'kind', doc ->> 'kind', doc -> 'n', doc ->> 'n' FROM docs ORDER BY id;
SELECT id, doc -> 'user' -> 'name', doc #> '{user,id}', doc #>> '{user,name}', doc #>> '{tags,1}' FROM docs ORDER BY id;
SELECT id, doc -> 0, doc -> -1, doc -> 5, doc ->> 2 FROM docs ORDER BY id;
SELECT id FROM docs WHERE doc @> '{"kind": "click"}' ORDER BY id;
SELECT id FROM docs WHERE '{"kind": "view"}' <@ doc ORDER BY id;
SELECT id FROM docs WHERE doc ? 'extra' ORDER BY id;
SELECT id, doc ?| array['extra', 'tags'], doc ?& array['kind', 'n'] FROM docs ORDER BY id;
SELECT doc ->> 'kind' AS kind, count(*), sum((doc ->> 'n')::int) FROM docs WHERE doc ? 'kind' GROUP BY 1 ORDER BY 1;
SELECT '{"b": 1, "a": [1, 2]}'::jsonb, pg_typeof('{}'::jsonb)::text, '{"a": 1}'::jsonb ->> 'a';
SELECT '[1, 2, [3]]'::jsonb @> '[[3], 1]', '[1, 2]'::jsonb @> '1', '1'::jsonb @> '[1]';
SELECT '"s"'::jsonb, 'null'::jsonb, 'true'::jsonb, '1.5'::jsonb, '[]'::jsonb;
SELECT '1.50'::jsonb, '{"a": 12345678901234567890}'::jsonb;
SELECT jsonb_build_object('a', 1, 'b', 'x', 'c', true, 'd', null, 'e', 2.5);
SELECT 'not json'::jsonb;

-- extract is numeric
SELECT extract(epoch FROM timestamp '2022-07-19 12:31:22.07'), extract(second FROM timestamp '2022-07-19 12:31:22.07');
SELECT extract(milliseconds FROM timestamp '2022-07-19 12:31:22.07'), extract(microseconds FROM timestamp '2022-07-19 12:31:22.07');
SELECT extract(year FROM date '2020-03-01'), extract(month FROM date '2020-03-01'), extract(doy FROM date '2020-03-01'), extract(epoch FROM date '2020-03-01');
SELECT extract(dow FROM date '2026-12-06'), extract(isodow FROM date '2026-12-06'), extract(week FROM date '2026-12-06'), extract(quarter FROM date '2026-12-06');
SELECT extract(century FROM date '2000-12-31'), extract(century FROM date '2001-01-01'), extract(decade FROM date '2026-01-01'), extract(millennium FROM date '2001-01-01');
SELECT extract(epoch FROM interval '1 year 2 mons 3 days 04:05:06.5'), extract(hour FROM interval '26 hours'), extract(minute FROM interval '90 minutes'), extract(year FROM interval '30 months');
SELECT extract(hour FROM date '2020-01-01');

-- timestamptz and casts to text
SELECT timestamptz '2020-01-01 12:00:00+02', '2020-01-01 12:00:00-03'::timestamptz, pg_typeof(timestamptz '2020-01-01 12:00:00+02')::text;
SELECT '2020-01-01 12:00:00'::timestamp::text, '2020-01-01 12:00:00.25'::timestamp::text, interval '1 day 2 hours'::text, interval '-1 mons 3 days'::text;
SELECT 1e20::float8::text, 0.1::float4::text, (1.0::float8 / 3)::text, 'x' || '2020-01-01 12:30:00.5'::timestamp;
SELECT timestamptz '2020-01-01 12:00:00+02'::text, CAST(timestamptz '2020-01-01 12:00:00-03:30' AS text);
SELECT pg_typeof(now())::text, pg_typeof(clock_timestamp())::text, clock_timestamp() >= now();

-- intervals sort, group and compare by length (a month is 30 days, a day 24 hours)
CREATE TABLE spans (id INT, a TIMESTAMP, b TIMESTAMP, v INTERVAL);
INSERT INTO spans VALUES
  (1, '2020-01-01 00:00', '2020-01-02 01:00', '25 hours'),
  (2, '2020-01-01 00:00', '2020-01-02 00:00', '1 day'),
  (3, '2020-01-01 00:00', '2020-01-01 23:00', '23 hours'),
  (4, '2020-01-01 00:00', '2020-01-31 00:00', '1 mon'),
  (5, '2020-01-01 00:00', '2020-01-30 00:00', '29 days'),
  (6, NULL, NULL, NULL);
SELECT id, v FROM spans ORDER BY v, id;
SELECT id, b - a FROM spans ORDER BY b - a DESC NULLS LAST, id;
SELECT id, v FROM spans ORDER BY v DESC LIMIT 2;
SELECT count(DISTINCT v), count(DISTINCT b - a), max(v), min(v), max(v) FILTER (WHERE v < interval '2 days') FROM spans;
SELECT v > interval '1 day', count(*) FROM spans GROUP BY 1 ORDER BY 1;
SELECT id FROM spans WHERE b - a > interval '24 hours' ORDER BY id;
SELECT (b - a) + interval '1 hour' AS w, count(*) FROM spans WHERE id IN (1, 3, 6) GROUP BY 1 ORDER BY 1;
