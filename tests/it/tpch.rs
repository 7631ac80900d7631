//! The 22 TPC-H queries as materialized views, each compared with
//! PostgreSQL's answer to its query over the same rows after every step:
//! the views are created over empty tables, then the tables are loaded in
//! two halves, rows are updated and deleted; at the end the same queries
//! are created again over the rows there (backfill) and compared too.
//!
//! The data come from a small seeded generator (`FRESHET_TPCH_SEED`) in
//! the shape of `dbgen`'s (the value domains the queries' predicates
//! select on: types, containers, segments, priorities, ship modes, comment
//! phrases), scaled to a few thousand line items so every query has rows.
//! The schema is TPC-H's with `VARCHAR` for its `CHAR(n)` columns
//! (Freshet stores `CHAR(n)` unpadded, a documented difference). The query
//! texts are TPC-H's with the validation parameters, but for
//! three changes that keep them about the same thing: q15's view is a
//! `WITH`; `extract(year …)` is cast to `integer` (Freshet's `extract` is
//! `double precision`, PostgreSQL's `numeric`: a documented difference);
//! q18's quantity threshold is 150 instead of 300 (no order of this data
//! reaches 300). Numeric values that differ only in the scale they are
//! shown with count as equal (`avg` and division: a documented
//! difference), and are reported.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::differential::{
    answer, differs_only_in_numeric_scale, env_number, first_difference, fresh_schema, judge,
    unordered, Answer, Verdict,
};
use super::harness::TestServer;
use super::oracle::postgres;

const TABLES: &str = "
CREATE TABLE region (r_regionkey INT NOT NULL, r_name VARCHAR(25) NOT NULL, r_comment VARCHAR(152));
CREATE TABLE nation (n_nationkey INT NOT NULL, n_name VARCHAR(25) NOT NULL, n_regionkey INT NOT NULL, n_comment VARCHAR(152));
CREATE TABLE supplier (s_suppkey INT NOT NULL, s_name VARCHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL, s_nationkey INT NOT NULL, s_phone VARCHAR(15) NOT NULL, s_acctbal NUMERIC(15,2) NOT NULL, s_comment VARCHAR(101) NOT NULL);
CREATE TABLE customer (c_custkey INT NOT NULL, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL, c_nationkey INT NOT NULL, c_phone VARCHAR(15) NOT NULL, c_acctbal NUMERIC(15,2) NOT NULL, c_mktsegment VARCHAR(10) NOT NULL, c_comment VARCHAR(117) NOT NULL);
CREATE TABLE part (p_partkey INT NOT NULL, p_name VARCHAR(55) NOT NULL, p_mfgr VARCHAR(25) NOT NULL, p_brand VARCHAR(10) NOT NULL, p_type VARCHAR(25) NOT NULL, p_size INT NOT NULL, p_container VARCHAR(10) NOT NULL, p_retailprice NUMERIC(15,2) NOT NULL, p_comment VARCHAR(23) NOT NULL);
CREATE TABLE partsupp (ps_partkey INT NOT NULL, ps_suppkey INT NOT NULL, ps_availqty INT NOT NULL, ps_supplycost NUMERIC(15,2) NOT NULL, ps_comment VARCHAR(199) NOT NULL);
CREATE TABLE orders (o_orderkey INT NOT NULL, o_custkey INT NOT NULL, o_orderstatus VARCHAR(1) NOT NULL, o_totalprice NUMERIC(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority VARCHAR(15) NOT NULL, o_clerk VARCHAR(15) NOT NULL, o_shippriority INT NOT NULL, o_comment VARCHAR(79) NOT NULL);
CREATE TABLE lineitem (l_orderkey INT NOT NULL, l_partkey INT NOT NULL, l_suppkey INT NOT NULL, l_linenumber INT NOT NULL, l_quantity NUMERIC(15,2) NOT NULL, l_extendedprice NUMERIC(15,2) NOT NULL, l_discount NUMERIC(15,2) NOT NULL, l_tax NUMERIC(15,2) NOT NULL, l_returnflag VARCHAR(1) NOT NULL, l_linestatus VARCHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, l_shipinstruct VARCHAR(25) NOT NULL, l_shipmode VARCHAR(10) NOT NULL, l_comment VARCHAR(44) NOT NULL);
";

/// TPC-H's queries 1 to 22 (see the module documentation for the three
/// changes).
const QUERIES: [&str; 22] = [
    // q1
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval '90' day GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    // q2
    "SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment FROM part, supplier, partsupp, nation, region WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND p_size = 15 AND p_type LIKE '%BRASS' AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'EUROPE' AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'EUROPE') ORDER BY s_acctbal DESC, n_name, s_name, p_partkey LIMIT 100",
    // q3
    "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority FROM customer, orders, lineitem WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15' GROUP BY l_orderkey, o_orderdate, o_shippriority ORDER BY revenue DESC, o_orderdate, l_orderkey LIMIT 10",
    // q4
    "SELECT o_orderpriority, count(*) AS order_count FROM orders WHERE o_orderdate >= date '1993-07-01' AND o_orderdate < date '1993-07-01' + interval '3' month AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate) GROUP BY o_orderpriority ORDER BY o_orderpriority",
    // q5
    "SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue FROM customer, orders, lineitem, supplier, nation, region WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1994-01-01' + interval '1' year GROUP BY n_name ORDER BY revenue DESC",
    // q6
    "SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem WHERE l_shipdate >= date '1994-01-01' AND l_shipdate < date '1994-01-01' + interval '1' year AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 AND l_quantity < 24",
    // q7
    "SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue FROM (SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, CAST(extract(year FROM l_shipdate) AS integer) AS l_year, l_extendedprice * (1 - l_discount) AS volume FROM supplier, lineitem, orders, customer, nation n1, nation n2 WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE')) AND l_shipdate BETWEEN date '1995-01-01' AND date '1996-12-31') AS shipping GROUP BY supp_nation, cust_nation, l_year ORDER BY supp_nation, cust_nation, l_year",
    // q8
    "SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS mkt_share FROM (SELECT CAST(extract(year FROM o_orderdate) AS integer) AS o_year, l_extendedprice * (1 - l_discount) AS volume, n2.n_name AS nation FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey AND r_name = 'AMERICA' AND s_nationkey = n2.n_nationkey AND o_orderdate BETWEEN date '1995-01-01' AND date '1996-12-31' AND p_type = 'ECONOMY ANODIZED STEEL') AS all_nations GROUP BY o_year ORDER BY o_year",
    // q9
    "SELECT nation, o_year, sum(amount) AS sum_profit FROM (SELECT n_name AS nation, CAST(extract(year FROM o_orderdate) AS integer) AS o_year, l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount FROM part, supplier, lineitem, partsupp, orders, nation WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey AND p_partkey = l_partkey AND o_orderkey = l_orderkey AND s_nationkey = n_nationkey AND p_name LIKE '%green%') AS profit GROUP BY nation, o_year ORDER BY nation, o_year DESC",
    // q10
    "SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, c_acctbal, n_name, c_address, c_phone, c_comment FROM customer, orders, lineitem, nation WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate >= date '1993-10-01' AND o_orderdate < date '1993-10-01' + interval '3' month AND l_returnflag = 'R' AND c_nationkey = n_nationkey GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment ORDER BY revenue DESC, c_custkey LIMIT 20",
    // q11
    "SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value FROM partsupp, supplier, nation WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY' GROUP BY ps_partkey HAVING sum(ps_supplycost * ps_availqty) > (SELECT sum(ps_supplycost * ps_availqty) * 0.0001000000 FROM partsupp, supplier, nation WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY') ORDER BY value DESC",
    // q12
    "SELECT l_shipmode, sum(CASE WHEN o_orderpriority = '1-URGENT' OR o_orderpriority = '2-HIGH' THEN 1 ELSE 0 END) AS high_line_count, sum(CASE WHEN o_orderpriority <> '1-URGENT' AND o_orderpriority <> '2-HIGH' THEN 1 ELSE 0 END) AS low_line_count FROM orders, lineitem WHERE o_orderkey = l_orderkey AND l_shipmode IN ('MAIL', 'SHIP') AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate AND l_receiptdate >= date '1994-01-01' AND l_receiptdate < date '1994-01-01' + interval '1' year GROUP BY l_shipmode ORDER BY l_shipmode",
    // q13
    "SELECT c_count, count(*) AS custdist FROM (SELECT c_custkey, count(o_orderkey) AS c_count FROM customer LEFT OUTER JOIN orders ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%' GROUP BY c_custkey) AS c_orders GROUP BY c_count ORDER BY custdist DESC, c_count DESC",
    // q14
    "SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END) / sum(l_extendedprice * (1 - l_discount)) AS promo_revenue FROM lineitem, part WHERE l_partkey = p_partkey AND l_shipdate >= date '1995-09-01' AND l_shipdate < date '1995-09-01' + interval '1' month",
    // q15
    "WITH revenue0 AS (SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue FROM lineitem WHERE l_shipdate >= date '1996-01-01' AND l_shipdate < date '1996-01-01' + interval '3' month GROUP BY l_suppkey) SELECT s_suppkey, s_name, s_address, s_phone, total_revenue FROM supplier, revenue0 WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM revenue0) ORDER BY s_suppkey",
    // q16
    "SELECT p_brand, p_type, p_size, count(DISTINCT ps_suppkey) AS supplier_cnt FROM partsupp, part WHERE p_partkey = ps_partkey AND p_brand <> 'Brand#45' AND p_type NOT LIKE 'MEDIUM POLISHED%' AND p_size IN (49, 14, 23, 45, 19, 3, 36, 9) AND ps_suppkey NOT IN (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%Customer%Complaints%') GROUP BY p_brand, p_type, p_size ORDER BY supplier_cnt DESC, p_brand, p_type, p_size",
    // q17
    "SELECT sum(l_extendedprice) / 7.0 AS avg_yearly FROM lineitem, part WHERE p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container = 'MED BOX' AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)",
    // q18
    "SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) FROM customer, orders, lineitem WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 150) AND c_custkey = o_custkey AND o_orderkey = l_orderkey GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice ORDER BY o_totalprice DESC, o_orderdate, o_orderkey LIMIT 100",
    // q19
    "SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue FROM lineitem, part WHERE (p_partkey = l_partkey AND p_brand = 'Brand#12' AND p_container IN ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG') AND l_quantity >= 1 AND l_quantity <= 1 + 10 AND p_size BETWEEN 1 AND 5 AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON') OR (p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container IN ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK') AND l_quantity >= 10 AND l_quantity <= 10 + 10 AND p_size BETWEEN 1 AND 10 AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON') OR (p_partkey = l_partkey AND p_brand = 'Brand#34' AND p_container IN ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG') AND l_quantity >= 20 AND l_quantity <= 20 + 10 AND p_size BETWEEN 1 AND 15 AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')",
    // q20
    "SELECT s_name, s_address FROM supplier, nation WHERE s_suppkey IN (SELECT ps_suppkey FROM partsupp WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%') AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey AND l_shipdate >= date '1994-01-01' AND l_shipdate < date '1994-01-01' + interval '1' year)) AND s_nationkey = n_nationkey AND n_name = 'CANADA' ORDER BY s_name",
    // q21
    "SELECT s_name, count(*) AS numwait FROM supplier, lineitem l1, orders, nation WHERE s_suppkey = l1.l_suppkey AND o_orderkey = l1.l_orderkey AND o_orderstatus = 'F' AND l1.l_receiptdate > l1.l_commitdate AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey) AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate) AND s_nationkey = n_nationkey AND n_name = 'SAUDI ARABIA' GROUP BY s_name ORDER BY numwait DESC, s_name LIMIT 100",
    // q22
    "SELECT cntrycode, count(*) AS numcust, sum(c_acctbal) AS totacctbal FROM (SELECT substring(c_phone FROM 1 FOR 2) AS cntrycode, c_acctbal FROM customer WHERE substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17') AND c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE c_acctbal > 0.00 AND substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17')) AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = c_custkey)) AS custsale GROUP BY cntrycode ORDER BY cntrycode",
];

const NATIONS: [(&str, i32); 25] = [
    ("ALGERIA", 0),
    ("ARGENTINA", 1),
    ("BRAZIL", 1),
    ("CANADA", 1),
    ("EGYPT", 4),
    ("ETHIOPIA", 0),
    ("FRANCE", 3),
    ("GERMANY", 3),
    ("INDIA", 2),
    ("INDONESIA", 2),
    ("IRAN", 4),
    ("IRAQ", 4),
    ("JAPAN", 2),
    ("JORDAN", 4),
    ("KENYA", 0),
    ("MOROCCO", 0),
    ("MOZAMBIQUE", 0),
    ("PERU", 1),
    ("CHINA", 2),
    ("ROMANIA", 3),
    ("SAUDI ARABIA", 4),
    ("VIETNAM", 2),
    ("RUSSIA", 3),
    ("UNITED KINGDOM", 3),
    ("UNITED STATES", 1),
];
const REGIONS: [&str; 5] = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"];
const SEGMENTS: [&str; 5] = [
    "AUTOMOBILE",
    "BUILDING",
    "FURNITURE",
    "HOUSEHOLD",
    "MACHINERY",
];
const PRIORITIES: [&str; 5] = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
const MODES: [&str; 7] = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];
const INSTRUCTIONS: [&str; 4] = [
    "DELIVER IN PERSON",
    "COLLECT COD",
    "NONE",
    "TAKE BACK RETURN",
];
const TYPE_1: [&str; 6] = ["STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"];
const TYPE_2: [&str; 5] = ["ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED"];
const TYPE_3: [&str; 5] = ["TIN", "NICKEL", "BRASS", "STEEL", "COPPER"];
const CONTAINER_1: [&str; 5] = ["SM", "LG", "MED", "JUMBO", "WRAP"];
const CONTAINER_2: [&str; 8] = ["CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"];
const COLORS: [&str; 12] = [
    "forest", "green", "almond", "blue", "chiffon", "khaki", "linen", "navy", "olive", "peach",
    "rose", "tan",
];
const WORDS: [&str; 10] = [
    "carefully",
    "final",
    "deposits",
    "sleep",
    "quickly",
    "ironic",
    "packages",
    "among",
    "bold",
    "foxes",
];
/// Phone country codes: those q22 asks for and others.
const CODES: [&str; 8] = ["13", "31", "23", "29", "30", "18", "17", "25"];

/// A seeded TPC-H-shaped database, as the `INSERT` statements of its rows.
struct Data {
    /// statements that load the first half (every table but the second
    /// half of orders and their line items)
    first: Vec<String>,
    /// the rest
    second: Vec<String>,
}

fn money(rng: &mut StdRng, lo: i64, hi: i64) -> String {
    let cents = rng.random_range(lo * 100..hi * 100);
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

fn words(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn date(days_since_1992: i64) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1992, 1, 1).unwrap_or_default()
        + chrono::Duration::days(days_since_1992);
    format!("'{d}'")
}

fn inserts(table: &str, rows: &[String]) -> Vec<String> {
    rows.chunks(200)
        .map(|c| format!("INSERT INTO {table} VALUES {}", c.join(", ")))
        .collect()
}

fn generate(seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let (suppliers, customers, parts, orders) = (20, 60, 80, 400);
    let mut first = Vec::new();
    let regions: Vec<String> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, r)| format!("({i}, '{r}', 'region {i}')"))
        .collect();
    first.extend(inserts("region", &regions));
    let nations: Vec<String> = NATIONS
        .iter()
        .enumerate()
        .map(|(i, (n, r))| format!("({i}, '{n}', {r}, 'nation {i}')"))
        .collect();
    first.extend(inserts("nation", &nations));
    let supplier_rows: Vec<String> = (1..=suppliers)
        .map(|k| {
            let comment = if k % 7 == 3 {
                format!(
                    "{} Customer {} Complaints",
                    words(&mut rng, 2),
                    words(&mut rng, 1)
                )
            } else {
                words(&mut rng, 4)
            };
            // nations the queries ask for, more often than the others
            let nation = match k % 5 {
                0 => 7,  // GERMANY
                1 => 20, // SAUDI ARABIA
                2 => 3,  // CANADA
                3 => 8,  // INDIA
                _ => rng.random_range(0..25),
            };
            format!(
                "({k}, 'Supplier#{k:09}', 'addr {k}', {nation}, '{}-{:03}-{:04}', {}, '{comment}')",
                10 + nation,
                rng.random_range(100..1000),
                rng.random_range(1000..10000),
                money(&mut rng, -999, 9999),
            )
        })
        .collect();
    first.extend(inserts("supplier", &supplier_rows));
    let customer_rows: Vec<String> = (1..=customers)
        .map(|k| {
            let nation = match k % 4 {
                0 => 8, // INDIA
                1 => 2, // BRAZIL
                2 => 6, // FRANCE
                _ => rng.random_range(0..25),
            };
            format!(
                "({k}, 'Customer#{k:09}', 'addr {k}', {nation}, '{}-{:03}-{:04}', {}, '{}', '{}')",
                pick(&mut rng, &CODES),
                rng.random_range(100..1000),
                rng.random_range(1000..10000),
                money(&mut rng, -999, 9999),
                pick(&mut rng, &SEGMENTS),
                words(&mut rng, 3),
            )
        })
        .collect();
    first.extend(inserts("customer", &customer_rows));
    let mut part_rows = Vec::new();
    let mut partsupp_rows = Vec::new();
    for k in 1..=parts {
        let name = format!(
            "{} {} {}",
            pick(&mut rng, &COLORS),
            pick(&mut rng, &COLORS),
            pick(&mut rng, &COLORS)
        );
        let m = rng.random_range(1..=5);
        let brand = format!("Brand#{m}{}", rng.random_range(1..=5));
        let ty = if k % 7 == 0 {
            "ECONOMY ANODIZED STEEL".to_string()
        } else if k % 6 == 0 {
            format!(
                "{} {} BRASS",
                pick(&mut rng, &TYPE_1),
                pick(&mut rng, &TYPE_2)
            )
        } else {
            format!(
                "{} {} {}",
                pick(&mut rng, &TYPE_1),
                pick(&mut rng, &TYPE_2),
                pick(&mut rng, &TYPE_3)
            )
        };
        let size = if k % 6 == 0 {
            15
        } else {
            rng.random_range(1..=50)
        };
        let container = format!(
            "{} {}",
            pick(&mut rng, &CONTAINER_1),
            pick(&mut rng, &CONTAINER_2)
        );
        part_rows.push(format!(
            "({k}, '{name}', 'Manufacturer#{m}', '{brand}', '{ty}', {size}, '{container}', {}, '{}')",
            money(&mut rng, 900, 2000),
            words(&mut rng, 2)
        ));
        for j in 0..4 {
            let supp = (k + j * (suppliers / 4) - 1) % suppliers + 1;
            partsupp_rows.push(format!(
                "({k}, {supp}, {}, {}, '{}')",
                rng.random_range(1..10000),
                money(&mut rng, 1, 1000),
                words(&mut rng, 3)
            ));
        }
    }
    first.extend(inserts("part", &part_rows));
    first.extend(inserts("partsupp", &partsupp_rows));
    let mut halves: [(Vec<String>, Vec<String>); 2] = Default::default();
    for o in 1..=orders {
        // customers with keys divisible by 3 have no orders (q13, q22)
        let cust = loop {
            let c = rng.random_range(1..=customers);
            if c % 3 != 0 {
                break c;
            }
        };
        let day = rng.random_range(0..2400);
        let comment = if o % 9 == 0 {
            format!(
                "{} special {} requests",
                words(&mut rng, 1),
                words(&mut rng, 1)
            )
        } else {
            words(&mut rng, 3)
        };
        let n_lines = rng.random_range(1..=7);
        let mut all_f = true;
        let mut lines = Vec::new();
        for l in 1..=n_lines {
            let part = rng.random_range(1..=parts);
            let supp = (part + rng.random_range(0..4) * (suppliers / 4) - 1) % suppliers + 1;
            let qty = rng.random_range(1..=50);
            let price = money(&mut rng, 900, 2000);
            let ship = day + rng.random_range(1..=121);
            let commit = day + rng.random_range(30..=90);
            let receipt = ship + rng.random_range(1..=30);
            let (flag, status) = if receipt <= 1263 {
                (if rng.random_bool(0.5) { "R" } else { "A" }, "F")
            } else {
                all_f = false;
                ("N", "O")
            };
            lines.push(format!(
                "({o}, {part}, {supp}, {l}, {qty}, {qty} * {price}, 0.0{}, 0.0{}, '{flag}', '{status}', {}, {}, {}, '{}', '{}', '{}')",
                rng.random_range(0..=9),
                rng.random_range(0..=8),
                date(ship),
                date(commit),
                date(receipt),
                pick(&mut rng, &INSTRUCTIONS),
                pick(&mut rng, &MODES),
                words(&mut rng, 2)
            ));
        }
        let status = if all_f { "F" } else { "O" };
        let order = format!(
            "({o}, {cust}, '{status}', {}, {}, '{}', 'Clerk#{:09}', 0, '{comment}')",
            money(&mut rng, 1000, 400000),
            date(day),
            pick(&mut rng, &PRIORITIES),
            rng.random_range(1..1000)
        );
        let half = &mut halves[usize::from(o > orders / 2)];
        half.0.push(order);
        half.1.extend(lines);
    }
    let [(o1, l1), (o2, l2)] = halves;
    first.extend(inserts("orders", &o1));
    first.extend(inserts("lineitem", &l1));
    let mut second = inserts("orders", &o2);
    second.extend(inserts("lineitem", &l2));
    Data { first, second }
}

/// Writes after the load: updates of keys, measures, dates and the
/// columns the queries filter on, then deletes.
const CHANGES: [(&str, &str); 2] = [
    (
        "updates",
        "UPDATE lineitem SET l_quantity = l_quantity + 7, l_discount = 0.06, l_shipdate = l_shipdate + 30 WHERE l_orderkey % 7 = 0;
         UPDATE orders SET o_orderpriority = '1-URGENT', o_orderdate = o_orderdate - 200 WHERE o_orderkey % 5 = 0;
         UPDATE part SET p_size = 15, p_brand = 'Brand#23', p_container = 'MED BOX' WHERE p_partkey % 9 = 0;
         UPDATE partsupp SET ps_supplycost = ps_supplycost / 2 WHERE ps_partkey % 4 = 0;
         UPDATE customer SET c_acctbal = c_acctbal + 5000, c_mktsegment = 'BUILDING' WHERE c_custkey % 4 = 1;
         UPDATE supplier SET s_nationkey = 6 WHERE s_suppkey = 5",
    ),
    (
        "deletes",
        "DELETE FROM lineitem WHERE l_orderkey % 11 = 0 OR l_linenumber = 3;
         DELETE FROM orders WHERE o_orderkey % 13 = 0;
         DELETE FROM customer WHERE c_custkey % 17 = 0;
         DELETE FROM partsupp WHERE ps_partkey % 10 = 0 AND ps_suppkey < 10;
         DELETE FROM supplier WHERE s_suppkey = 7",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_views_match_postgres() {
    let Some(pg) = postgres("tpch_views_match_postgres").await else {
        return;
    };
    let seed = env_number("FRESHET_TPCH_SEED").unwrap_or(22);
    let schema = fresh_schema(&pg, "tpch").await;
    let server = TestServer::start();
    let fr = server.connect().await;
    pg.batch_execute(TABLES).await.unwrap();
    fr.batch_execute(TABLES).await.unwrap();
    let mut refused = Vec::new();
    let mut views = Vec::new();
    for (i, q) in QUERIES.iter().enumerate() {
        match answer(&fr, &format!("CREATE MATERIALIZED VIEW q{} AS {q}", i + 1)).await {
            Answer::Done => views.push(i),
            other => refused.push(format!("q{}: {other:?}", i + 1)),
        }
    }
    let data = generate(seed);
    let mut steps: Vec<(&str, String)> = vec![
        ("the first half", data.first.join(";\n")),
        ("the second half", data.second.join(";\n")),
    ];
    steps.extend(CHANGES.iter().map(|(what, sql)| (*what, sql.to_string())));
    let (mut equal, mut scale) = (0, 0);
    let mut empty = std::collections::BTreeSet::new();
    let mut different = Vec::new();
    let mut compare = |what: &str, i: usize, view: &str, want: Answer, got: Answer| {
        if let Answer::Rows { rows, .. } = &want {
            if rows.is_empty() {
                empty.insert(format!("q{} after {what}", i + 1));
            }
        }
        match judge(&want, &got) {
            Verdict::Equal => equal += 1,
            Verdict::Different if differs_only_in_numeric_scale(&want, &got) => scale += 1,
            _ => different.push(format!(
                "{view} (q{}) after {what}:\n{}",
                i + 1,
                first_difference(&want, &got)
            )),
        }
    };
    for (what, sql) in &steps {
        pg.batch_execute(sql).await.unwrap();
        fr.batch_execute(sql).await.unwrap();
        for &i in &views {
            let want = unordered(answer(&pg, QUERIES[i]).await);
            let got = answer(&fr, &format!("SELECT * FROM q{}", i + 1)).await;
            compare(what, i, &format!("q{}", i + 1), want, got);
        }
    }
    // the same queries over the rows there now
    for &i in &views {
        let name = format!("backfilled_q{}", i + 1);
        let created = answer(
            &fr,
            &format!("CREATE MATERIALIZED VIEW {name} AS {}", QUERIES[i]),
        )
        .await;
        let got = match created {
            Answer::Done => answer(&fr, &format!("SELECT * FROM {name}")).await,
            failed => failed,
        };
        let want = unordered(answer(&pg, QUERIES[i]).await);
        compare("backfill", i, &name, want, got);
    }
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    eprintln!(
        "tpch views: {} of 22 created; {equal} comparisons equal, {scale} equal but for the \
         scale numeric values show, {} different (PostgreSQL's answer empty: {})",
        views.len(),
        different.len(),
        empty.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    assert!(
        refused.is_empty(),
        "TPC-H views refused:\n{}",
        refused.join("\n")
    );
    assert!(
        different.is_empty(),
        "TPC-H views answer differently from PostgreSQL:\n{}",
        different.join("\n\n")
    );
}
