//! The SQL dialect every statement is parsed with: sqlparser's PostgreSQL
//! dialect, with the operator precedences it gets wrong corrected.
//!
//! `a IS [NOT] DISTINCT FROM b AND c` is `(a IS DISTINCT FROM b) AND c` in
//! PostgreSQL (IS binds tighter than AND), but sqlparser reads the right
//! side as a whole expression, `a IS DISTINCT FROM (b AND c)`, and the
//! statement then fails, or, where the types allow, answers differently.
//! [`Postgres`] parses the right side at IS's precedence.

use std::any::TypeId;

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

/// PostgreSQL's dialect as Freshet parses it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Postgres;

const PG: PostgreSqlDialect = PostgreSqlDialect {};

/// Forwards a `&self` method without arguments to [`PostgreSqlDialect`].
macro_rules! forward {
    ($($name:ident -> $ty:ty),* $(,)?) => {
        $(fn $name(&self) -> $ty { PG.$name() })*
    };
}

impl Dialect for Postgres {
    /// Checks such as `dialect_of!(self is PostgreSqlDialect)` treat this
    /// dialect as PostgreSQL's.
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        PG.identifier_quote_style(identifier)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        PG.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        PG.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        PG.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        PG.is_reserved_for_identifier(kw)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        PG.is_custom_operator_part(ch)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        PG.get_next_precedence(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        PG.prec_value(prec)
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        let is = self.prec_value(Precedence::Is);
        if parser.parse_keywords(&[Keyword::IS, Keyword::DISTINCT, Keyword::FROM]) {
            return Some(
                parser
                    .parse_subexpr(is)
                    .map(|r| Expr::IsDistinctFrom(Box::new(expr.clone()), Box::new(r))),
            );
        }
        if parser.parse_keywords(&[Keyword::IS, Keyword::NOT, Keyword::DISTINCT, Keyword::FROM]) {
            return Some(
                parser
                    .parse_subexpr(is)
                    .map(|r| Expr::IsNotDistinctFrom(Box::new(expr.clone()), Box::new(r))),
            );
        }
        None
    }

    forward! {
        supports_unicode_string_literal -> bool,
        supports_filter_during_aggregation -> bool,
        supports_group_by_expr -> bool,
        allow_extract_custom -> bool,
        allow_extract_single_quotes -> bool,
        supports_create_index_with_clause -> bool,
        supports_explain_with_utility_options -> bool,
        supports_listen_notify -> bool,
        supports_factorial_operator -> bool,
        supports_bitwise_shift_operators -> bool,
        supports_comment_on -> bool,
        supports_load_extension -> bool,
        supports_named_fn_args_with_colon_operator -> bool,
        supports_named_fn_args_with_expr_name -> bool,
        supports_empty_projections -> bool,
        supports_nested_comments -> bool,
        supports_string_escape_constant -> bool,
        supports_numeric_literal_underscores -> bool,
        supports_array_typedef_with_brackets -> bool,
        supports_geometric_types -> bool,
        supports_set_names -> bool,
        supports_alter_column_type_using -> bool,
        supports_notnull_operator -> bool,
        supports_interval_options -> bool,
        supports_insert_table_alias -> bool,
        supports_create_table_like_parenthesized -> bool,
        supports_select_wildcard_with_alias -> bool,
        supports_comma_separated_trim -> bool,
        supports_xml_expressions -> bool,
        supports_comment_optimizer_hint -> bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> String {
        Parser::new(&Postgres)
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
            .to_string()
    }

    #[test]
    fn is_distinct_from_binds_tighter_than_and() {
        assert_eq!(
            parse("a IS DISTINCT FROM b AND c"),
            "a IS DISTINCT FROM b AND c"
        );
        let e = Parser::new(&Postgres)
            .try_with_sql("a IS NOT DISTINCT FROM b OR c")
            .unwrap()
            .parse_expr()
            .unwrap();
        assert!(matches!(e, Expr::BinaryOp { .. }), "{e:?}");
        // comparison and arithmetic still bind tighter than IS
        let e = Parser::new(&Postgres)
            .try_with_sql("a IS DISTINCT FROM b + 1")
            .unwrap()
            .parse_expr()
            .unwrap();
        assert!(matches!(e, Expr::IsDistinctFrom(..)), "{e:?}");
    }
}
