//! The grammar of the statements about roles and privileges, as Postgres
//! 15 spells them: `CREATE/ALTER/DROP ROLE|USER`, `GRANT`/`REVOKE` on
//! relations and on schema `public`, `ALTER … OWNER TO`, `REASSIGN OWNED`.
//! What they mean is decided in `auth::manage`.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::parser::{expect_end, normalize_ident, object_name, object_names, parser, syntax};
use super::SqlError;
use crate::auth::{AccessStatement, GrantTarget, Privilege, RoleOptions};
use crate::catalog::RelationKind;

/// A role named in a statement: an identifier, or `CURRENT_USER` /
/// `SESSION_USER` / `CURRENT_ROLE`, which the engine resolves.
pub const CURRENT_USER: &str = "\0current_user";

fn role_name(p: &mut Parser) -> Result<String, SqlError> {
    let t = p.next_token();
    match t.token {
        Token::Word(w) if w.quote_style.is_none() => {
            let lower = w.value.to_ascii_lowercase();
            match lower.as_str() {
                "current_user" | "session_user" | "current_role" => Ok(CURRENT_USER.to_string()),
                _ => Ok(lower),
            }
        }
        Token::Word(w) => Ok(w.value),
        Token::SingleQuotedString(s) => Ok(s),
        other => Err(SqlError::Syntax(format!(
            "syntax error at or near \"{other}\": expected a role name"
        ))),
    }
}

fn role_names(p: &mut Parser) -> Result<Vec<String>, SqlError> {
    let mut out = vec![role_name(p)?];
    while p.consume_token(&Token::Comma) {
        out.push(role_name(p)?);
    }
    Ok(out)
}

fn word(p: &mut Parser) -> Option<String> {
    match p.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(what.into())
}

/// The options of `CREATE ROLE … [WITH] option …` and `ALTER ROLE`.
fn role_options(p: &mut Parser, create: bool) -> Result<RoleOptions, SqlError> {
    let mut o = RoleOptions::default();
    let _ = p.parse_keyword(Keyword::WITH);
    while let Some(w) = word(p) {
        let _ = p.next_token();
        match w.as_str() {
            "SUPERUSER" => o.superuser = Some(true),
            "NOSUPERUSER" => o.superuser = Some(false),
            "LOGIN" => o.login = Some(true),
            "NOLOGIN" => o.login = Some(false),
            "CREATEROLE" => o.create_role = Some(true),
            "NOCREATEROLE" => o.create_role = Some(false),
            "CREATEDB" => o.create_db = Some(true),
            "NOCREATEDB" => o.create_db = Some(false),
            // every role inherits (there is no membership); no
            // replication or row security exists to opt out of
            "INHERIT" | "NOINHERIT" | "NOREPLICATION" | "NOBYPASSRLS" => {}
            "ENCRYPTED" | "UNENCRYPTED" | "PASSWORD" => {
                if w != "PASSWORD" {
                    p.expect_keyword_is(Keyword::PASSWORD).map_err(syntax)?;
                }
                if w == "UNENCRYPTED" {
                    return Err(unsupported(
                        "UNENCRYPTED PASSWORD is not supported: passwords are stored as SCRAM-SHA-256 verifiers",
                    ));
                }
                let t = p.next_token();
                o.password = Some(match t.token {
                    Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Some(s),
                    Token::DollarQuotedString(d) => Some(d.value),
                    Token::Word(w) if w.keyword == Keyword::NULL => None,
                    other => {
                        return Err(SqlError::Syntax(format!(
                            "syntax error at or near \"{other}\": PASSWORD takes a string or NULL"
                        )))
                    }
                });
            }
            "REPLICATION" | "BYPASSRLS" => {
                return Err(unsupported(format!("role attribute {w} is not supported")))
            }
            "CONNECTION" | "VALID" | "IN" | "ROLE" | "ADMIN" | "USER" | "SYSID" => {
                return Err(unsupported(format!(
                    "{} {w} … is not supported",
                    if create { "CREATE ROLE" } else { "ALTER ROLE" }
                )))
            }
            other => {
                return Err(SqlError::Syntax(format!(
                    "syntax error at or near \"{other}\": unrecognized role option"
                )))
            }
        }
    }
    Ok(o)
}

/// `CREATE ROLE|USER [IF NOT EXISTS] name [WITH] options` (`USER` implies
/// `LOGIN`).
pub fn parse_create_role(text: &str) -> Result<AccessStatement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::CREATE).map_err(syntax)?;
    let user = if p.parse_keyword(Keyword::USER) {
        true
    } else {
        p.expect_keyword_is(Keyword::ROLE).map_err(syntax)?;
        false
    };
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = role_name(&mut p)?;
    if name == CURRENT_USER {
        return Err(SqlError::Syntax(
            "CURRENT_USER cannot be used as a role name here".into(),
        ));
    }
    let mut options = role_options(&mut p, true)?;
    if user && options.login.is_none() {
        options.login = Some(true);
    }
    expect_end(&mut p)?;
    Ok(AccessStatement::CreateRole {
        name,
        if_not_exists,
        options,
    })
}

/// `ALTER ROLE|USER name [WITH] options`, `… RENAME TO new`.
pub fn parse_alter_role(text: &str) -> Result<AccessStatement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::ALTER).map_err(syntax)?;
    if !p.parse_keyword(Keyword::USER) {
        p.expect_keyword_is(Keyword::ROLE).map_err(syntax)?;
    }
    let name = role_name(&mut p)?;
    if p.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
        let to = role_name(&mut p)?;
        expect_end(&mut p)?;
        return Ok(AccessStatement::RenameRole { name, to });
    }
    if p.parse_keyword(Keyword::SET) || p.parse_keyword(Keyword::RESET) {
        return Err(unsupported(
            "ALTER ROLE … SET/RESET (per-role settings) is not supported",
        ));
    }
    let options = role_options(&mut p, false)?;
    expect_end(&mut p)?;
    Ok(AccessStatement::AlterRole { name, options })
}

/// `DROP ROLE|USER [IF EXISTS] name, …`
pub fn parse_drop_role(text: &str) -> Result<AccessStatement, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::DROP).map_err(syntax)?;
    if !p.parse_keyword(Keyword::USER) {
        p.expect_keyword_is(Keyword::ROLE).map_err(syntax)?;
    }
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = role_names(&mut p)?;
    expect_end(&mut p)?;
    Ok(AccessStatement::DropRole { names, if_exists })
}

/// `SELECT, INSERT, …` or `ALL [PRIVILEGES]`; `None` for ALL.
fn privileges(p: &mut Parser) -> Result<Option<Vec<Privilege>>, SqlError> {
    if p.parse_keyword(Keyword::ALL) {
        let _ = p.parse_keyword(Keyword::PRIVILEGES);
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let Some(w) = word(p) else {
            let t = p.peek_token().token;
            return Err(SqlError::Syntax(format!(
                "syntax error at or near \"{t}\": expected a privilege"
            )));
        };
        let _ = p.next_token();
        match Privilege::parse(&w) {
            Some(pr) => out.push(pr),
            None if matches!(
                w.as_str(),
                "TRUNCATE"
                    | "REFERENCES"
                    | "TRIGGER"
                    | "TEMPORARY"
                    | "TEMP"
                    | "CONNECT"
                    | "EXECUTE"
            ) =>
            {
                return Err(unsupported(format!("privilege {w} is not supported")));
            }
            None => {
                // `GRANT role TO role` (membership) names a role here
                return Err(unsupported(format!(
                    "GRANT/REVOKE of role membership (\"{}\") is not supported; grant privileges on relations",
                    w.to_ascii_lowercase()
                )));
            }
        }
        if p.consume_token(&Token::LParen) {
            return Err(unsupported(
                "column privileges (GRANT … (column) ON …) are not supported",
            ));
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    Ok(Some(out))
}

enum On {
    Relations(GrantTarget),
    Schema(Vec<String>),
}

fn grant_on(p: &mut Parser) -> Result<On, SqlError> {
    p.expect_keyword_is(Keyword::ON).map_err(syntax)?;
    if p.parse_keyword(Keyword::SCHEMA) {
        let names = p
            .parse_comma_separated(|p| p.parse_identifier())
            .map_err(syntax)?;
        return Ok(On::Schema(names.iter().map(normalize_ident).collect()));
    }
    if p.parse_keyword(Keyword::ALL) {
        match word(p).as_deref() {
            Some("TABLES") | Some("SOURCES") | Some("VIEWS") => {
                let _ = p.next_token();
            }
            Some("MATERIALIZED") => {
                let _ = p.next_token();
                let _ = p.next_token();
            }
            _ => {
                let t = p.peek_token().token;
                return Err(unsupported(format!("GRANT … ON ALL {t} is not supported")));
            }
        }
        p.expect_keywords(&[Keyword::IN, Keyword::SCHEMA])
            .map_err(syntax)?;
        let s = normalize_ident(&p.parse_identifier().map_err(syntax)?);
        if s != "public" {
            return Err(SqlError::Unsupported(format!(
                "GRANT … ON ALL … IN SCHEMA {s} is not supported for schemas other than public: grant on each relation (GRANT SELECT ON {s}.name …)"
            )));
        }
        return Ok(On::Relations(GrantTarget::AllInSchema));
    }
    match word(p).as_deref() {
        Some("TABLE") | Some("SOURCE") => {
            let _ = p.next_token();
        }
        Some("MATERIALIZED") => {
            let _ = p.next_token();
            p.expect_keyword_is(Keyword::VIEW).map_err(syntax)?;
        }
        Some(
            k @ ("SEQUENCE" | "FUNCTION" | "DATABASE" | "TYPE" | "LANGUAGE" | "DOMAIN" | "FOREIGN"
            | "PROCEDURE" | "ROUTINE" | "TABLESPACE" | "LARGE"),
        ) => {
            return Err(unsupported(format!("GRANT … ON {k} is not supported")));
        }
        _ => {}
    }
    let names = object_names(p)?;
    Ok(On::Relations(GrantTarget::Relations(names)))
}

fn grantees(p: &mut Parser) -> Result<Vec<String>, SqlError> {
    let mut out = Vec::new();
    loop {
        let _ = p.parse_keyword(Keyword::GROUP);
        out.push(role_name(p)?);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    Ok(out)
}

/// `GRANT privileges ON … TO roles` and `REVOKE [GRANT OPTION FOR]
/// privileges ON … FROM roles [CASCADE|RESTRICT]`.
pub fn parse_grant(text: &str) -> Result<AccessStatement, SqlError> {
    let mut p = parser(text)?;
    let grant = if p.parse_keyword(Keyword::GRANT) {
        true
    } else {
        p.expect_keyword_is(Keyword::REVOKE).map_err(syntax)?;
        false
    };
    if !grant && p.parse_keywords(&[Keyword::GRANT, Keyword::OPTION, Keyword::FOR]) {
        return Err(unsupported("grant options are not supported"));
    }
    let privs = privileges(&mut p)?;
    let on = grant_on(&mut p)?;
    if grant {
        p.expect_keyword_is(Keyword::TO).map_err(syntax)?;
    } else {
        p.expect_keyword_is(Keyword::FROM).map_err(syntax)?;
    }
    let to = grantees(&mut p)?;
    if grant && p.parse_keywords(&[Keyword::WITH, Keyword::GRANT, Keyword::OPTION]) {
        return Err(unsupported(
            "WITH GRANT OPTION is not supported: only owners and superusers grant",
        ));
    }
    if p.parse_keywords(&[Keyword::GRANTED, Keyword::BY]) {
        let _ = role_name(&mut p)?;
    }
    if !grant && !p.parse_keyword(Keyword::CASCADE) {
        let _ = p.parse_keyword(Keyword::RESTRICT);
    }
    expect_end(&mut p)?;
    match on {
        On::Schema(schemas) => {
            let (create, usage) = match &privs {
                None => (true, true),
                Some(v) => {
                    if let Some(bad) = v
                        .iter()
                        .find(|x| !matches!(x, Privilege::Create | Privilege::Usage))
                    {
                        return Err(SqlError::InvalidGrant(format!(
                            "invalid privilege type {} for schema",
                            bad.as_str()
                        )));
                    }
                    (
                        v.contains(&Privilege::Create),
                        v.contains(&Privilege::Usage),
                    )
                }
            };
            Ok(AccessStatement::GrantSchema {
                schemas,
                create,
                usage,
                to,
                grant,
            })
        }
        On::Relations(target) => {
            let privileges = match privs {
                None => Privilege::ALL.to_vec(),
                Some(v) => {
                    if let Some(bad) = v
                        .iter()
                        .find(|x| matches!(x, Privilege::Create | Privilege::Usage))
                    {
                        return Err(SqlError::InvalidGrant(format!(
                            "invalid privilege type {} for relation",
                            bad.as_str()
                        )));
                    }
                    v
                }
            };
            Ok(if grant {
                AccessStatement::Grant {
                    privileges,
                    on: target,
                    to,
                }
            } else {
                AccessStatement::Revoke {
                    privileges,
                    on: target,
                    from: to,
                }
            })
        }
    }
}

/// `ALTER {TABLE|SOURCE|MATERIALIZED VIEW} [IF EXISTS] name OWNER TO role`;
/// `None` when the statement is another ALTER.
pub fn parse_alter_owner(text: &str) -> Result<Option<AccessStatement>, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::ALTER).map_err(syntax)?;
    let kind = match word(&mut p).as_deref() {
        Some("TABLE") => RelationKind::Table,
        Some("SOURCE") => RelationKind::Source,
        Some("MATERIALIZED") => RelationKind::View,
        _ => return Ok(None),
    };
    let _ = p.next_token();
    if kind == RelationKind::View && !p.parse_keyword(Keyword::VIEW) {
        return Ok(None);
    }
    let _ = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = match p.parse_object_name(false) {
        Ok(n) => object_name(&n)?,
        Err(_) => return Ok(None),
    };
    if !p.parse_keywords(&[Keyword::OWNER, Keyword::TO]) {
        return Ok(None);
    }
    let owner = role_name(&mut p)?;
    expect_end(&mut p)?;
    Ok(Some(AccessStatement::AlterOwner { kind, name, owner }))
}

/// `REASSIGN OWNED BY role, … TO role`
pub fn parse_reassign(text: &str) -> Result<AccessStatement, SqlError> {
    let mut p = parser(text)?;
    match (word(&mut p).as_deref(), p.peek_nth_token(1).token) {
        (Some("REASSIGN"), Token::Word(w)) if w.value.eq_ignore_ascii_case("owned") => {
            let _ = p.next_token();
            let _ = p.next_token();
        }
        _ => return Err(SqlError::Syntax("expected REASSIGN OWNED".into())),
    }
    p.expect_keyword_is(Keyword::BY).map_err(syntax)?;
    let from = role_names(&mut p)?;
    p.expect_keyword_is(Keyword::TO).map_err(syntax)?;
    let to = role_name(&mut p)?;
    expect_end(&mut p)?;
    Ok(AccessStatement::ReassignOwned { from, to })
}

/// `SET ROLE name | NONE`, `SET SESSION AUTHORIZATION name | DEFAULT`:
/// `None` means back to the session's own role.
pub fn parse_set_role(text: &str) -> Result<Option<String>, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::SET).map_err(syntax)?;
    let _ = p.parse_keyword(Keyword::SESSION) || p.parse_keyword(Keyword::LOCAL);
    if !p.parse_keyword(Keyword::ROLE) {
        p.expect_keyword_is(Keyword::AUTHORIZATION)
            .map_err(syntax)?;
    }
    let target = match word(&mut p).as_deref() {
        Some("NONE") | Some("DEFAULT") => {
            let _ = p.next_token();
            None
        }
        _ => Some(role_name(&mut p)?),
    };
    expect_end(&mut p)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let s = parse_create_role("CREATE USER bi WITH PASSWORD 'x' NOSUPERUSER").unwrap();
        assert_eq!(
            s,
            AccessStatement::CreateRole {
                name: "bi".into(),
                if_not_exists: false,
                options: RoleOptions {
                    login: Some(true),
                    superuser: Some(false),
                    password: Some(Some("x".into())),
                    ..Default::default()
                }
            }
        );
        let s = parse_alter_role("ALTER ROLE \"Bob\" PASSWORD NULL NOLOGIN").unwrap();
        assert_eq!(
            s,
            AccessStatement::AlterRole {
                name: "Bob".into(),
                options: RoleOptions {
                    login: Some(false),
                    password: Some(None),
                    ..Default::default()
                }
            }
        );
        assert!(matches!(
            parse_create_role("CREATE ROLE x VALID UNTIL 'infinity'"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse_create_role("CREATE ROLE x FROB"),
            Err(SqlError::Syntax(_))
        ));
        assert_eq!(
            parse_drop_role("DROP ROLE IF EXISTS a, b").unwrap(),
            AccessStatement::DropRole {
                names: vec!["a".into(), "b".into()],
                if_exists: true
            }
        );
    }

    #[test]
    fn grants() {
        assert_eq!(
            parse_grant("GRANT SELECT, insert ON TABLE t, public.u TO bi, PUBLIC").unwrap(),
            AccessStatement::Grant {
                privileges: vec![Privilege::Select, Privilege::Insert],
                on: GrantTarget::Relations(vec!["t".into(), "u".into()]),
                to: vec!["bi".into(), "public".into()],
            }
        );
        assert_eq!(
            parse_grant("REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM bi CASCADE")
                .unwrap(),
            AccessStatement::Revoke {
                privileges: Privilege::ALL.to_vec(),
                on: GrantTarget::AllInSchema,
                from: vec!["bi".into()],
            }
        );
        assert_eq!(
            parse_grant("GRANT USAGE, CREATE ON SCHEMA public, Sales TO etl").unwrap(),
            AccessStatement::GrantSchema {
                schemas: vec!["public".into(), "sales".into()],
                create: true,
                usage: true,
                to: vec!["etl".into()],
                grant: true
            }
        );
        assert!(matches!(
            parse_grant("GRANT admins TO bob"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse_grant("GRANT SELECT ON t TO bi WITH GRANT OPTION"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse_grant("GRANT SELECT ON SCHEMA public TO bi"),
            Err(SqlError::InvalidGrant(_))
        ));
    }

    #[test]
    fn owners() {
        assert_eq!(
            parse_alter_owner("ALTER MATERIALIZED VIEW v OWNER TO bob").unwrap(),
            Some(AccessStatement::AlterOwner {
                kind: RelationKind::View,
                name: "v".into(),
                owner: "bob".into()
            })
        );
        assert_eq!(
            parse_alter_owner("ALTER MATERIALIZED VIEW v RECOMPUTE").unwrap(),
            None
        );
        assert_eq!(
            parse_reassign("REASSIGN OWNED BY a, b TO c").unwrap(),
            AccessStatement::ReassignOwned {
                from: vec!["a".into(), "b".into()],
                to: "c".into()
            }
        );
        assert_eq!(parse_set_role("SET ROLE NONE").unwrap(), None);
        assert_eq!(
            parse_set_role("SET SESSION AUTHORIZATION bob").unwrap(),
            Some("bob".into())
        );
    }
}
