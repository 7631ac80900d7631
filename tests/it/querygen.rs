//! A seeded generator of random queries over a fixed schema with NULLs, in
//! the manner of sqlsmith: joins of every kind, correlated and uncorrelated
//! subqueries, aggregates with DISTINCT and FILTER, CASE, casts, date, time
//! and interval arithmetic, string functions and numeric edge values. The
//! same seed gives the same queries, so a difference found by the
//! differential test is reproduced from the seed and the query's number.
//!
//! Every expression is built for one type and only combined with others
//! through explicit casts, so each query is valid in PostgreSQL (errors come
//! only from values: overflow, division by zero), and each output column is
//! aliased `c0, c1, …`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The tables both sides are created with.
pub const TABLES: &str = "
CREATE TABLE g1 (id INT, a INT, b BIGINT, c TEXT, d NUMERIC(10,2), ts TIMESTAMP, f BOOLEAN);
CREATE TABLE g2 (id INT, x INT, y INT, s TEXT, ts TIMESTAMP);
";

/// The rows of `g1`, as `VALUES` tuples.
pub const G1_ROWS: &[&str] = &[
    "(1, 0, 10, 'abc', 1.50, '2020-01-01 00:00:00', true)",
    "(2, 1, -5, '', -2.25, '2020-02-29 12:30:00', false)",
    "(3, -1, NULL, 'Hello World', 0.00, '2021-12-31 23:59:59.5', NULL)",
    "(4, 2, 5000000000, NULL, 99999999.99, NULL, true)",
    "(5, NULL, 0, 'x%y', NULL, '2019-06-15 08:00:00', false)",
    "(6, 5, 7, 'abc', 3.33, '2020-01-01 00:00:00', true)",
    "(7, 2147483647, -9223372036854775807, 'zz', -0.01, '1999-12-31 23:59:59', NULL)",
    "(8, -7, 3, 'A', 12.50, '2020-03-01 00:00:00', false)",
    "(9, 3, NULL, 'e\u{e9}t\u{e9}', 2.00, '2020-01-02 00:00:00', true)",
    "(10, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(11, 1, 10, 'hello world', 1.50, '2020-01-01 00:00:00.25', true)",
    "(12, 100, 2, ' pad ', -100.75, '2024-02-29 00:00:00', false)",
];

/// The rows of `g2`, as `VALUES` tuples.
pub const G2_ROWS: &[&str] = &[
    "(1, 0, 1, 'abc', '2020-01-01 00:00:00')",
    "(2, 1, 1, 'A', '2020-01-15 06:00:00')",
    "(3, 2, NULL, 'zz', NULL)",
    "(4, NULL, 3, NULL, '2019-06-15 08:00:00')",
    "(5, 5, 5, 'x%y', '2020-03-01 00:00:00')",
    "(6, 3, -7, '', '2021-01-01 00:00:00')",
    "(7, 100, 2, 'hello world', '2020-02-29 12:30:00')",
    "(8, -1, 0, 'abc', '2020-01-01 00:00:00')",
    "(9, 7, NULL, 'Hello World', '2022-07-04 12:00:00')",
    "(10, NULL, NULL, NULL, NULL)",
];

/// `INSERT` statements for some rows of a table.
pub fn insert(table: &str, rows: &[&str]) -> String {
    format!("INSERT INTO {table} VALUES {};", rows.join(", "))
}

/// The tables and all their rows.
pub fn schema() -> String {
    format!(
        "{TABLES}{}\n{}",
        insert("g1", G1_ROWS),
        insert("g2", G2_ROWS)
    )
}

/// Subqueries are not nested in subqueries: a subquery in a subquery's
/// WHERE that refers to the outer query can fail to plan (42703, listed in
/// docs/sql.md "Differences from PostgreSQL").
const MAX_SUBQUERY_DEPTH: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Int,
    Big,
    Num,
    Text,
    Ts,
    Interval,
    Bool,
}

const COLUMNS: &[(&str, &str, Ty)] = &[
    ("g1", "id", Ty::Int),
    ("g1", "a", Ty::Int),
    ("g1", "b", Ty::Big),
    ("g1", "c", Ty::Text),
    ("g1", "d", Ty::Num),
    ("g1", "ts", Ty::Ts),
    ("g1", "f", Ty::Bool),
    ("g2", "id", Ty::Int),
    ("g2", "x", Ty::Int),
    ("g2", "y", Ty::Int),
    ("g2", "s", Ty::Text),
    ("g2", "ts", Ty::Ts),
];

/// What a query generator is allowed to emit.
pub struct Gen {
    rng: StdRng,
    /// The tables (by alias → table) visible to expressions.
    scope: Vec<(String, &'static str)>,
    /// Whether aggregate calls may appear (in an aggregate query's select
    /// list and HAVING).
    aggregates: bool,
    subquery_depth: usize,
    next_alias: usize,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            scope: Vec::new(),
            aggregates: false,
            subquery_depth: 0,
            next_alias: 0,
        }
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A column of type `ty` from the scope, qualified by its alias.
    fn column(&mut self, ty: Ty) -> Option<String> {
        let cols: Vec<String> = self
            .scope
            .iter()
            .flat_map(|(alias, table)| {
                COLUMNS
                    .iter()
                    .filter(move |(t, _, cty)| t == table && *cty == ty)
                    .map(move |(_, c, _)| format!("{alias}.{c}"))
            })
            .collect();
        if cols.is_empty() {
            None
        } else {
            Some(self.pick(&cols).clone())
        }
    }

    fn literal(&mut self, ty: Ty) -> String {
        match ty {
            Ty::Int => self
                .pick(&["0", "1", "2", "-1", "3", "10", "-7", "1000", "NULL::int"])
                .to_string(),
            Ty::Big => self
                .pick(&[
                    "5000000000",
                    "CAST(2 AS BIGINT)",
                    "-1::bigint",
                    "NULL::bigint",
                ])
                .to_string(),
            Ty::Num => self
                .pick(&[
                    "1.5",
                    "0.25",
                    "-3.75",
                    "100.0",
                    "0.001",
                    "NULL::numeric",
                    "2.50",
                ])
                .to_string(),
            Ty::Text => self
                .pick(&["'abc'", "''", "'A'", "'hello world'", "'x%y'", "NULL::text"])
                .to_string(),
            Ty::Ts => self
                .pick(&[
                    "TIMESTAMP '2020-01-01 00:00:00'",
                    "TIMESTAMP '2020-02-29 12:30:00'",
                    "'2021-06-01 10:00'::timestamp",
                ])
                .to_string(),
            Ty::Interval => self
                .pick(&[
                    "INTERVAL '1 day'",
                    "INTERVAL '2 hours'",
                    "INTERVAL '7 days'",
                    "INTERVAL '1 day 02:30:00'",
                    "INTERVAL '90 minutes'",
                    "INTERVAL '-3 days'",
                ])
                .to_string(),
            Ty::Bool => self.pick(&["true", "false", "NULL::boolean"]).to_string(),
        }
    }

    /// An expression of type `ty`, at most `depth` operators deep.
    pub fn expr(&mut self, ty: Ty, depth: usize) -> String {
        if depth == 0 || self.chance(0.3) {
            return self.leaf(ty);
        }
        let d = depth - 1;
        if self.aggregates && ty != Ty::Bool && self.chance(0.3) {
            if let Some(a) = self.aggregate(ty, d) {
                return a;
            }
        }
        match ty {
            Ty::Int => match self.rng.random_range(0..11) {
                0 => format!("({} + {})", self.expr(ty, d), self.expr(ty, d)),
                1 => format!("({} - {})", self.expr(ty, d), self.expr(ty, d)),
                2 => format!("({} * {})", self.expr(ty, d), self.expr(ty, d)),
                3 => format!("({} / {})", self.expr(ty, d), self.expr(ty, d)),
                4 => format!("({} % {})", self.expr(ty, d), self.expr(ty, d)),
                5 => format!("abs({})", self.expr(ty, d)),
                6 => self.case(ty, d),
                7 => format!("COALESCE({}, {})", self.expr(ty, d), self.expr(ty, d)),
                8 => format!("NULLIF({}, {})", self.expr(ty, d), self.expr(ty, d)),
                9 => format!("length({})", self.expr(Ty::Text, d)),
                _ => self.scalar_subquery(ty).unwrap_or_else(|| self.leaf(ty)),
            },
            Ty::Big => match self.rng.random_range(0..5) {
                0 => format!("({} + {})", self.expr(ty, d), self.expr(ty, d)),
                1 => format!("CAST({} AS BIGINT)", self.expr(Ty::Int, d)),
                2 => self.case(ty, d),
                3 => format!("({} * {})", self.expr(ty, d), self.expr(Ty::Big, d)),
                _ => self.count_subquery(),
            },
            Ty::Num => match self.rng.random_range(0..8) {
                0 => format!("({} + {})", self.expr(ty, d), self.expr(ty, d)),
                1 => format!("({} - {})", self.expr(ty, d), self.expr(ty, d)),
                2 => format!("({} * {})", self.expr(ty, d), self.expr(ty, d)),
                3 => format!("CAST({} AS NUMERIC)", self.expr(Ty::Int, d)),
                4 => format!("round({}, 1)", self.expr(ty, d)),
                5 => format!("abs({})", self.expr(ty, d)),
                6 => self.case(ty, d),
                _ => format!("COALESCE({}, {})", self.expr(ty, d), self.expr(ty, d)),
            },
            Ty::Text => match self.rng.random_range(0..9) {
                0 => format!("({} || {})", self.expr(ty, d), self.expr(ty, d)),
                1 => format!("upper({})", self.expr(ty, d)),
                2 => format!("lower({})", self.expr(ty, d)),
                3 => format!("substr({}, 2, 3)", self.expr(ty, d)),
                4 => format!("CAST({} AS TEXT)", self.expr(Ty::Int, d)),
                5 => format!("trim({})", self.expr(ty, d)),
                6 => format!("replace({}, 'l', 'L')", self.expr(ty, d)),
                7 => self.case(ty, d),
                _ => format!("COALESCE({}, {})", self.expr(ty, d), self.expr(ty, d)),
            },
            Ty::Ts => match self.rng.random_range(0..4) {
                0 => format!("({} + {})", self.expr(ty, d), self.expr(Ty::Interval, d)),
                1 => format!("({} - {})", self.expr(ty, d), self.expr(Ty::Interval, d)),
                2 => format!("date_trunc('day', {})", self.expr(ty, d)),
                _ => self.case(ty, d),
            },
            Ty::Interval => match self.rng.random_range(0..3) {
                0 => format!("({} - {})", self.expr(Ty::Ts, d), self.expr(Ty::Ts, d)),
                1 => format!("({} + {})", self.expr(ty, d), self.expr(ty, d)),
                _ => self.case(ty, d),
            },
            Ty::Bool => self.predicate(d),
        }
    }

    fn leaf(&mut self, ty: Ty) -> String {
        if self.chance(0.75) {
            if let Some(c) = self.column(ty) {
                return c;
            }
        }
        self.literal(ty)
    }

    fn case(&mut self, ty: Ty, d: usize) -> String {
        if self.chance(0.5) {
            format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.predicate(d),
                self.expr(ty, d),
                self.expr(ty, d)
            )
        } else {
            format!(
                "CASE WHEN {} THEN {} END",
                self.predicate(d),
                self.expr(ty, d)
            )
        }
    }

    /// A comparable type for comparisons.
    fn comparable(&mut self) -> Ty {
        *self.pick(&[
            Ty::Int,
            Ty::Int,
            Ty::Big,
            Ty::Num,
            Ty::Text,
            Ty::Ts,
            Ty::Interval,
        ])
    }

    pub fn predicate(&mut self, depth: usize) -> String {
        if depth == 0 {
            let t = self.comparable();
            let op = *self.pick(&["=", "<>", "<", "<=", ">", ">="]);
            return format!("{} {op} {}", self.leaf(t), self.leaf(t));
        }
        let d = depth - 1;
        match self.rng.random_range(0..13) {
            0..=2 => {
                let t = self.comparable();
                let op = *self.pick(&["=", "<>", "<", "<=", ">", ">="]);
                format!("{} {op} {}", self.expr(t, d), self.expr(t, d))
            }
            3 => format!("({} AND {})", self.predicate(d), self.predicate(d)),
            4 => format!("({} OR {})", self.predicate(d), self.predicate(d)),
            5 => format!("NOT ({})", self.predicate(d)),
            6 => {
                let t = self.comparable();
                let not = if self.chance(0.5) { "NOT " } else { "" };
                format!("{} IS {not}NULL", self.expr(t, d))
            }
            7 => {
                let t = *self.pick(&[Ty::Int, Ty::Text]);
                let items: Vec<String> = (0..self.rng.random_range(1..4))
                    .map(|_| self.literal(t))
                    .collect();
                let not = if self.chance(0.3) { "NOT " } else { "" };
                format!("{} {not}IN ({})", self.expr(t, d), items.join(", "))
            }
            8 => {
                let t = *self.pick(&[Ty::Int, Ty::Num, Ty::Ts]);
                format!(
                    "{} BETWEEN {} AND {}",
                    self.expr(t, d),
                    self.leaf(t),
                    self.leaf(t)
                )
            }
            9 => {
                let pat = *self.pick(&["'a%'", "'%o%'", "'_'", "'%'", "'H%d'", "'x\\%y'"]);
                let not = if self.chance(0.3) { "NOT " } else { "" };
                format!("{} {not}LIKE {pat}", self.expr(Ty::Text, d))
            }
            10 => self.exists_subquery(),
            11 => self.in_subquery(d),
            _ => {
                let t = self.comparable();
                let not = if self.chance(0.5) { "NOT " } else { "" };
                format!(
                    "{} IS {not}DISTINCT FROM {}",
                    self.expr(t, d),
                    self.expr(t, d)
                )
            }
        }
    }

    fn aggregate(&mut self, ty: Ty, d: usize) -> Option<String> {
        // arguments of aggregates are plain expressions
        self.aggregates = false;
        let filter = |g: &mut Gen| {
            if g.chance(0.2) {
                format!(" FILTER (WHERE {})", g.predicate(1))
            } else {
                String::new()
            }
        };
        let out = match ty {
            Ty::Big => match self.rng.random_range(0..4) {
                0 => Some(format!("count(*){}", filter(self))),
                1 => {
                    let t = self.comparable();
                    Some(format!("count({}){}", self.expr(t, d), filter(self)))
                }
                2 => {
                    let t = self.comparable();
                    Some(format!(
                        "count(DISTINCT {}){}",
                        self.expr(t, d),
                        filter(self)
                    ))
                }
                _ => Some(format!("sum({}){}", self.expr(Ty::Int, d), filter(self))),
            },
            Ty::Num => match self.rng.random_range(0..3) {
                0 => Some(format!("sum({}){}", self.expr(Ty::Num, d), filter(self))),
                1 => Some(format!("avg({}){}", self.expr(Ty::Num, d), filter(self))),
                _ => Some(format!("sum({}){}", self.expr(Ty::Big, d), filter(self))),
            },
            Ty::Text => match self.rng.random_range(0..2) {
                0 => {
                    // ordered by the value itself, so the order is total
                    let c = self.column(Ty::Text).unwrap_or_else(|| "'k'".into());
                    Some(format!("string_agg({c}, ',' ORDER BY {c} NULLS FIRST)"))
                }
                _ => {
                    let f = *self.pick(&["min", "max"]);
                    Some(format!("{f}({}){}", self.expr(ty, d), filter(self)))
                }
            },
            Ty::Int | Ty::Ts | Ty::Interval => {
                let f = *self.pick(&["min", "max"]);
                Some(format!("{f}({}){}", self.expr(ty, d), filter(self)))
            }
            Ty::Bool => None,
        };
        self.aggregates = true;
        out
    }

    /// Runs `f` with a fresh inner scope `i{n}` over `table` (plus the outer
    /// scope, so the subquery may correlate).
    fn inner<T>(&mut self, table: &'static str, f: impl FnOnce(&mut Gen, &str) -> T) -> T {
        let alias = format!("i{}", self.next_alias);
        self.next_alias += 1;
        let aggregates = std::mem::replace(&mut self.aggregates, false);
        self.subquery_depth += 1;
        self.scope.push((alias.clone(), table));
        let out = f(self, &alias);
        self.scope.pop();
        self.subquery_depth -= 1;
        self.aggregates = aggregates;
        out
    }

    fn sub_table(&mut self) -> &'static str {
        if self.chance(0.5) {
            "g1"
        } else {
            "g2"
        }
    }

    fn sub_where(&mut self, alias: &str, table: &str) -> String {
        // correlate with an outer column half of the time
        let inner_int = if table == "g1" { "a" } else { "y" };
        let outer = self
            .scope
            .iter()
            .filter(|(a, _)| a != alias)
            .map(|(a, t)| (a.clone(), *t))
            .collect::<Vec<_>>();
        if !outer.is_empty() && self.chance(0.6) {
            let (oa, ot) = self.pick(&outer).clone();
            let oc = *self.pick(if ot == "g1" {
                &["a", "id"][..]
            } else {
                &["x", "y", "id"][..]
            });
            let op = *self.pick(&["=", "=", "<", ">"]);
            format!(" WHERE {alias}.{inner_int} {op} {oa}.{oc}")
        } else if self.chance(0.5) {
            format!(" WHERE {}", self.predicate(1))
        } else {
            String::new()
        }
    }

    /// A subquery over a table picked at random, its text built by `body`
    /// in the subquery's scope (alias, table); `None` at the nesting limit.
    fn subquery(
        &mut self,
        body: impl FnOnce(&mut Gen, &str, &'static str) -> String,
    ) -> Option<String> {
        if self.subquery_depth >= MAX_SUBQUERY_DEPTH {
            return None;
        }
        let table = self.sub_table();
        Some(self.inner(table, |g, alias| body(g, alias, table)))
    }

    fn scalar_subquery(&mut self, ty: Ty) -> Option<String> {
        self.subquery(|g, alias, table| {
            let f = *g.pick(&["max", "min"]);
            let arg = g
                .column_of(alias, table, ty)
                .unwrap_or_else(|| g.literal(ty));
            let w = g.sub_where(alias, table);
            format!("(SELECT {f}({arg}) FROM {table} {alias}{w})")
        })
    }

    fn count_subquery(&mut self) -> String {
        self.subquery(|g, alias, table| {
            let w = g.sub_where(alias, table);
            format!("(SELECT count(*) FROM {table} {alias}{w})")
        })
        .unwrap_or_else(|| self.literal(Ty::Big))
    }

    fn exists_subquery(&mut self) -> String {
        self.subquery(|g, alias, table| {
            let not = if g.chance(0.3) { "NOT " } else { "" };
            let w = g.sub_where(alias, table);
            format!("{not}EXISTS (SELECT 1 FROM {table} {alias}{w})")
        })
        .unwrap_or_else(|| self.literal(Ty::Bool))
    }

    fn in_subquery(&mut self, d: usize) -> String {
        if self.subquery_depth >= MAX_SUBQUERY_DEPTH {
            return self.literal(Ty::Bool);
        }
        // (the left side is in the outer scope)
        let lhs = self.expr(Ty::Int, d);
        self.subquery(|g, alias, table| {
            let not = if g.chance(0.3) { "NOT " } else { "" };
            let col = if table == "g1" { "a" } else { "x" };
            let w = g.sub_where(alias, table);
            format!("{lhs} {not}IN (SELECT {alias}.{col} FROM {table} {alias}{w})")
        })
        .unwrap_or_else(|| self.literal(Ty::Bool))
    }

    fn column_of(&mut self, alias: &str, table: &str, ty: Ty) -> Option<String> {
        let cols: Vec<&str> = COLUMNS
            .iter()
            .filter(|(t, _, cty)| *t == table && *cty == ty)
            .map(|(_, c, _)| *c)
            .collect();
        if cols.is_empty() {
            None
        } else {
            Some(format!("{alias}.{}", self.pick(&cols)))
        }
    }

    fn table_expression(&mut self) -> String {
        self.scope.clear();
        match self.rng.random_range(0..8) {
            0 | 1 => {
                self.scope.push(("g1".into(), "g1"));
                "g1".into()
            }
            2 => {
                self.scope.push(("g2".into(), "g2"));
                "g2".into()
            }
            k => {
                self.scope.push(("g1".into(), "g1"));
                self.scope.push(("g2".into(), "g2"));
                let on = self
                    .pick(&[
                        "g1.a = g2.x",
                        "g1.c = g2.s",
                        "g1.id = g2.y",
                        "g1.ts = g2.ts",
                        "g1.a = g2.y AND g1.ts < g2.ts",
                    ])
                    .to_string();
                match k {
                    3 => format!("g1 JOIN g2 ON {on}"),
                    4 => format!("g1 LEFT JOIN g2 ON {on}"),
                    5 => format!("g1 RIGHT JOIN g2 ON {on}"),
                    6 => format!("g1 FULL JOIN g2 ON {on}"),
                    _ => "g1 CROSS JOIN g2".into(),
                }
            }
        }
    }

    fn any_type(&mut self) -> Ty {
        *self.pick(&[
            Ty::Int,
            Ty::Int,
            Ty::Big,
            Ty::Num,
            Ty::Text,
            Ty::Text,
            Ty::Ts,
            Ty::Interval,
            Ty::Bool,
        ])
    }

    /// A whole query.
    pub fn query(&mut self) -> String {
        self.next_alias = 0;
        match self.rng.random_range(0..10) {
            0..=4 => self.select(),
            5..=7 => self.grouped(),
            8 => self.set_operation(),
            _ => {
                // ordered by every column, so that the rows kept are the same
                let (q, width) = self.select_with_width();
                let n = self.rng.random_range(1..6);
                let by: Vec<String> = (1..=width).map(|i| i.to_string()).collect();
                format!("{q} ORDER BY {} LIMIT {n}", by.join(", "))
            }
        }
    }

    fn select(&mut self) -> String {
        self.select_with_width().0
    }

    fn select_with_width(&mut self) -> (String, usize) {
        let from = self.table_expression();
        let n = self.rng.random_range(2..5);
        let items: Vec<String> = (0..n)
            .map(|i| {
                let t = self.any_type();
                format!("{} AS c{i}", self.expr(t, 3))
            })
            .collect();
        let distinct = if self.chance(0.15) { "DISTINCT " } else { "" };
        let w = if self.chance(0.7) {
            format!(" WHERE {}", self.predicate(2))
        } else {
            String::new()
        };
        (
            format!("SELECT {distinct}{} FROM {from}{w}", items.join(", ")),
            n,
        )
    }

    fn grouped(&mut self) -> String {
        let from = self.table_expression();
        let keys: Vec<String> = (0..self.rng.random_range(0..3))
            .map(|_| {
                let t = *self.pick(&[Ty::Int, Ty::Text, Ty::Bool, Ty::Ts]);
                self.leaf(t)
            })
            .filter(|k| k.contains('.'))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut items: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS k{i}"))
            .collect();
        let w = if self.chance(0.5) {
            format!(" WHERE {}", self.predicate(2))
        } else {
            String::new()
        };
        self.aggregates = true;
        for i in 0..self.rng.random_range(1..4) {
            let t = *self.pick(&[Ty::Big, Ty::Big, Ty::Num, Ty::Int, Ty::Text, Ty::Ts]);
            let a = self
                .aggregate(t, 2)
                .unwrap_or_else(|| "count(*)".to_string());
            items.push(format!("{a} AS c{i}"));
        }
        let having = if self.chance(0.3) {
            let a = self
                .aggregate(Ty::Big, 1)
                .unwrap_or_else(|| "count(*)".into());
            format!(" HAVING {a} > {}", self.rng.random_range(0..3))
        } else {
            String::new()
        };
        self.aggregates = false;
        let group = if keys.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", keys.join(", "))
        };
        format!("SELECT {} FROM {from}{w}{group}{having}", items.join(", "))
    }

    fn set_operation(&mut self) -> String {
        let types: Vec<Ty> = (0..self.rng.random_range(1..3))
            .map(|_| self.any_type())
            .collect();
        let side = |g: &mut Gen| {
            let from = g.table_expression();
            let items: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{} AS c{i}", g.expr(*t, 2)))
                .collect();
            let w = if g.chance(0.5) {
                format!(" WHERE {}", g.predicate(1))
            } else {
                String::new()
            };
            format!("SELECT {} FROM {from}{w}", items.join(", "))
        };
        let l = side(self);
        let r = side(self);
        let op = *self.pick(&[
            "UNION",
            "UNION ALL",
            "INTERSECT",
            "EXCEPT",
            "INTERSECT ALL",
            "EXCEPT ALL",
        ]);
        format!("{l} {op} {r}")
    }
}
