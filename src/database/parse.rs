//! `CREATE DATABASE`, `DROP DATABASE` and `ALTER DATABASE`, as PostgreSQL
//! writes them (sqlparser knows other dialects' forms only).

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::sql::parser::{expect_end, normalize_ident, parser, syntax};
use crate::sql::SqlError;

/// `CREATE DATABASE name [WITH] [option [=] value] …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateDatabase {
    pub name: String,
    pub if_not_exists: bool,
    pub owner: Option<String>,
    /// `CONNECTION LIMIT n` (-1: none).
    pub connection_limit: Option<i32>,
    /// `ALLOW_CONNECTIONS false` refuses new connections.
    pub allow_connections: Option<bool>,
}

/// `DROP DATABASE [IF EXISTS] name [[WITH] (FORCE)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropDatabase {
    pub name: String,
    pub if_exists: bool,
    pub force: bool,
}

/// `ALTER DATABASE name …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterDatabase {
    Rename {
        name: String,
        to: String,
    },
    Owner {
        name: String,
        to: String,
    },
    /// `ALTER DATABASE name [WITH] CONNECTION LIMIT n | ALLOW_CONNECTIONS b`.
    Options {
        name: String,
        connection_limit: Option<i32>,
        allow_connections: Option<bool>,
    },
}

/// An option's value: a word, a string or a number (`DEFAULT` is `None`).
fn value(p: &mut Parser) -> Result<Option<String>, SqlError> {
    let _ = p.consume_token(&Token::Eq);
    let t = p.next_token();
    match t.token {
        Token::Word(w) if w.keyword == Keyword::DEFAULT && w.quote_style.is_none() => Ok(None),
        Token::Word(w) => Ok(Some(match w.quote_style {
            Some(_) => w.value,
            None => w.value.to_ascii_lowercase(),
        })),
        Token::SingleQuotedString(s) => Ok(Some(s)),
        Token::Number(n, _) => Ok(Some(n)),
        Token::Minus => match p.next_token().token {
            Token::Number(n, _) => Ok(Some(format!("-{n}"))),
            t => Err(SqlError::Syntax(format!("syntax error at or near \"{t}\""))),
        },
        t => Err(SqlError::Syntax(format!("syntax error at or near \"{t}\""))),
    }
}

fn boolean(option: &str, v: Option<String>) -> Result<Option<bool>, SqlError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "on" | "yes" | "1" | "t") => Ok(Some(true)),
        Some("false" | "off" | "no" | "0" | "f") => Ok(Some(false)),
        Some(x) => Err(SqlError::InvalidParameterValue(format!(
            "{option} requires a Boolean value, not \"{x}\""
        ))),
    }
}

fn limit(v: Option<String>) -> Result<Option<i32>, SqlError> {
    match v {
        None => Ok(Some(-1)),
        Some(v) => match v.parse::<i32>() {
            Ok(n) if n >= -1 => Ok(Some(n)),
            _ => Err(SqlError::InvalidParameterValue(format!(
                "invalid connection limit: {v}"
            ))),
        },
    }
}

/// The option words of CREATE/ALTER DATABASE, upper-cased; `CONNECTION
/// LIMIT` comes back as `CONNECTION_LIMIT`.
fn option_word(p: &mut Parser) -> Result<Option<String>, SqlError> {
    while p.consume_token(&Token::Comma) {}
    match p.peek_token().token {
        Token::EOF | Token::SemiColon => return Ok(None),
        _ => {}
    }
    let t = p.next_token();
    let Token::Word(w) = t.token else {
        return Err(SqlError::Syntax(format!(
            "syntax error at or near \"{}\"",
            t.token
        )));
    };
    let word = w.value.to_ascii_uppercase();
    if word == "CONNECTION" {
        p.expect_keyword_is(Keyword::LIMIT).map_err(syntax)?;
        return Ok(Some("CONNECTION_LIMIT".into()));
    }
    Ok(Some(word))
}

/// Parses `CREATE DATABASE …`. Options Freshet has no use for but can honour
/// (the UTF8 encoding, the C locale, a template without contents) are
/// accepted; the rest are refused by name.
pub fn parse_create(text: &str) -> Result<CreateDatabase, SqlError> {
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::CREATE, Keyword::DATABASE])
        .map_err(syntax)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    check_name(&name)?;
    let _ = p.parse_keyword(Keyword::WITH);
    let mut c = CreateDatabase {
        name,
        if_not_exists,
        ..Default::default()
    };
    while let Some(word) = option_word(&mut p)? {
        let v = value(&mut p)?;
        match word.as_str() {
            "OWNER" => c.owner = v,
            "TEMPLATE" => match v.as_deref() {
                None | Some("template0" | "template1") => {}
                Some(t) => {
                    return Err(SqlError::Unsupported(format!(
                        "CREATE DATABASE … TEMPLATE {t} is not supported: a new database starts empty (TEMPLATE template0 or template1)"
                    )))
                }
            },
            "ENCODING" => match v.as_deref().map(str::to_ascii_uppercase).as_deref() {
                None | Some("UTF8" | "UTF-8" | "UNICODE" | "6") => {}
                Some(e) => {
                    return Err(SqlError::Unsupported(format!(
                        "encoding \"{e}\" is not supported: Freshet stores text as UTF8"
                    )))
                }
            },
            "LOCALE" | "LC_COLLATE" | "LC_CTYPE" => match v.as_deref() {
                None | Some("C" | "POSIX" | "C.UTF-8" | "C.utf8" | "C.UTF8" | "c") => {}
                Some(l) => {
                    return Err(SqlError::Unsupported(format!(
                        "{word} \"{l}\" is not supported: Freshet compares text bytewise, as the C locale does"
                    )))
                }
            },
            "LOCALE_PROVIDER" => match v.as_deref() {
                None | Some("libc") => {}
                Some(l) => {
                    return Err(SqlError::Unsupported(format!(
                        "LOCALE_PROVIDER {l} is not supported (only libc with the C locale)"
                    )))
                }
            },
            "TABLESPACE" => match v.as_deref() {
                None | Some("pg_default") => {}
                Some(t) => {
                    return Err(SqlError::Unsupported(format!(
                        "tablespace \"{t}\" is not supported: every database lives in the data directory"
                    )))
                }
            },
            "STRATEGY" => {}
            "IS_TEMPLATE" => {
                if boolean("is_template", v)? == Some(true) {
                    return Err(SqlError::Unsupported(
                        "template databases are not supported (IS_TEMPLATE true)".into(),
                    ));
                }
            }
            "ALLOW_CONNECTIONS" => c.allow_connections = boolean("allow_connections", v)?,
            "CONNECTION_LIMIT" => c.connection_limit = limit(v)?,
            other => {
                return Err(SqlError::Unsupported(format!(
                    "CREATE DATABASE option {other} is not supported"
                )))
            }
        }
    }
    expect_end(&mut p)?;
    Ok(c)
}

/// Parses `DROP DATABASE …`.
pub fn parse_drop(text: &str) -> Result<DropDatabase, SqlError> {
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::DROP, Keyword::DATABASE])
        .map_err(syntax)?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    let _ = p.parse_keyword(Keyword::WITH);
    let mut force = false;
    if p.consume_token(&Token::LParen) {
        loop {
            let w = p.parse_identifier().map_err(syntax)?;
            if !w.value.eq_ignore_ascii_case("force") {
                return Err(SqlError::Syntax(format!(
                    "unrecognized DROP DATABASE option \"{}\"",
                    w.value
                )));
            }
            force = true;
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(syntax)?;
    }
    expect_end(&mut p)?;
    Ok(DropDatabase {
        name,
        if_exists,
        force,
    })
}

/// Parses `ALTER DATABASE …`: RENAME TO, OWNER TO, CONNECTION LIMIT and
/// ALLOW_CONNECTIONS; `SET`/`RESET` and the rest are refused by name.
pub fn parse_alter(text: &str) -> Result<AlterDatabase, SqlError> {
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::ALTER, Keyword::DATABASE])
        .map_err(syntax)?;
    let name = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    let a = if p.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
        let to = normalize_ident(&p.parse_identifier().map_err(syntax)?);
        check_name(&to)?;
        AlterDatabase::Rename { name, to }
    } else if p.parse_keywords(&[Keyword::OWNER, Keyword::TO]) {
        let to = normalize_ident(&p.parse_identifier().map_err(syntax)?);
        AlterDatabase::Owner { name, to }
    } else if p.parse_keyword(Keyword::SET) || p.parse_keyword(Keyword::RESET) {
        return Err(SqlError::Unsupported(
            "ALTER DATABASE … SET/RESET is not supported: set the parameter per session (SET) or per connection (options)".into(),
        ));
    } else {
        let _ = p.parse_keyword(Keyword::WITH);
        let mut connection_limit = None;
        let mut allow_connections = None;
        let mut any = false;
        while let Some(word) = option_word(&mut p)? {
            let v = value(&mut p)?;
            any = true;
            match word.as_str() {
                "CONNECTION_LIMIT" => connection_limit = limit(v)?,
                "ALLOW_CONNECTIONS" => allow_connections = boolean("allow_connections", v)?,
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "ALTER DATABASE option {other} is not supported"
                    )))
                }
            }
        }
        if !any {
            return Err(SqlError::Syntax(
                "syntax error: expected RENAME TO, OWNER TO or an option after ALTER DATABASE name"
                    .into(),
            ));
        }
        AlterDatabase::Options {
            name,
            connection_limit,
            allow_connections,
        }
    };
    expect_end(&mut p)?;
    Ok(a)
}

/// A database name: what PostgreSQL takes (any identifier up to 63 bytes).
fn check_name(name: &str) -> Result<(), SqlError> {
    if name.is_empty() {
        return Err(SqlError::Syntax("zero-length delimited identifier".into()));
    }
    if name.len() > 63 {
        return Err(SqlError::InvalidParameterValue(format!(
            "database name \"{name}\" is longer than 63 bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create() {
        let c = parse_create("CREATE DATABASE shop").unwrap();
        assert_eq!(c.name, "shop");
        let c = parse_create(
            "create database \"Shop\" with owner = alice template template0 encoding 'UTF8' \
             lc_collate 'C' connection limit 5 allow_connections false",
        )
        .unwrap();
        assert_eq!(c.name, "Shop");
        assert_eq!(c.owner.as_deref(), Some("alice"));
        assert_eq!(c.connection_limit, Some(5));
        assert_eq!(c.allow_connections, Some(false));
        assert!(matches!(
            parse_create("CREATE DATABASE x ENCODING LATIN1"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse_create("CREATE DATABASE x TEMPLATE shop"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse_create("CREATE DATABASE x LOCALE 'en_US.UTF-8'"),
            Err(SqlError::Unsupported(_))
        ));
        assert!(parse_create("CREATE DATABASE").is_err());
    }

    #[test]
    fn drop_and_alter() {
        let d = parse_drop("DROP DATABASE IF EXISTS shop WITH (FORCE)").unwrap();
        assert!(d.if_exists && d.force);
        assert_eq!(d.name, "shop");
        assert!(!parse_drop("drop database shop").unwrap().force);
        assert!(parse_drop("DROP DATABASE shop (fast)").is_err());
        assert_eq!(
            parse_alter("ALTER DATABASE a RENAME TO b").unwrap(),
            AlterDatabase::Rename {
                name: "a".into(),
                to: "b".into()
            }
        );
        assert_eq!(
            parse_alter("ALTER DATABASE a CONNECTION LIMIT 3").unwrap(),
            AlterDatabase::Options {
                name: "a".into(),
                connection_limit: Some(3),
                allow_connections: None
            }
        );
        assert!(matches!(
            parse_alter("ALTER DATABASE a SET search_path = x"),
            Err(SqlError::Unsupported(_))
        ));
    }
}
