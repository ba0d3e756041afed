//! Test filter expressions, as `[[override]] filter = "..."` uses them:
//! a glob over the test name, or `tag:NAME`, `suite:GLOB`, `name:GLOB`,
//! combined with `&` (and), `|` (or), `!` (not) and parentheses. A part in
//! quotes (`'...'` or `"..."`) is taken as it stands, spaces and operators
//! included, for names like a cargo case's `mycrate tests::adds`:
//!
//! ```text
//! db/**             tag:slow & !net/*             (suite:db | tag:db) & !tag:flaky
//! 'mycrate tests::adds' | name:'mycrate::api *'
//! ```

use globset::{GlobBuilder, GlobMatcher};

/// What an expression is matched against.
pub struct Subject<'a> {
    pub name: &'a str,
    pub suite: &'a str,
    pub tags: &'a [String],
}

#[derive(Debug, Clone)]
pub enum Expression {
    Name(GlobMatcher),
    Suite(GlobMatcher),
    Tag(String),
    Not(Box<Expression>),
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err("empty filter (expected a glob like `db/*` or `tag:slow`)".into());
        }
        let mut parser = Parser { tokens, next: 0 };
        let expression = parser.or()?;
        match parser.tokens.get(parser.next) {
            None => Ok(expression),
            Some(token) => Err(format!("unexpected `{}` in filter `{text}`", token.text())),
        }
    }

    pub fn matches(&self, subject: &Subject) -> bool {
        match self {
            Expression::Name(glob) => glob.is_match(subject.name),
            Expression::Suite(glob) => glob.is_match(subject.suite),
            Expression::Tag(tag) => subject.tags.iter().any(|t| t == tag),
            Expression::Not(inner) => !inner.matches(subject),
            Expression::And(a, b) => a.matches(subject) && b.matches(subject),
            Expression::Or(a, b) => a.matches(subject) || b.matches(subject),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    And,
    Or,
    Not,
    Open,
    Close,
    Word(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::And => "&",
            Token::Or => "|",
            Token::Not => "!",
            Token::Open => "(",
            Token::Close => ")",
            Token::Word(word) => word,
        }
    }
}

/// `!` is an operator only where a term starts (globs use `[!a]`).
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    let mut quote = None;
    for c in text.chars() {
        if let Some(open) = quote {
            if c == open {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            continue;
        }
        let operator = match c {
            '&' => Some(Token::And),
            '|' => Some(Token::Or),
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            '!' if word.is_empty() => Some(Token::Not),
            _ => None,
        };
        if let Some(token) = operator {
            flush(&mut word, &mut tokens);
            tokens.push(token);
        } else if c.is_whitespace() {
            flush(&mut word, &mut tokens);
        } else {
            word.push(c);
        }
    }
    if let Some(open) = quote {
        return Err(format!("unclosed {open} in filter `{text}`"));
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
}

impl Parser {
    fn take_if(&mut self, wanted: &Token) -> bool {
        let found = self.tokens.get(self.next) == Some(wanted);
        if found {
            self.next += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Expression, String> {
        let mut left = self.and()?;
        while self.take_if(&Token::Or) {
            left = Expression::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, String> {
        let mut left = self.unary()?;
        while self.take_if(&Token::And) {
            left = Expression::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, String> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        match token {
            Some(Token::Not) => Ok(Expression::Not(Box::new(self.unary()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
                if !self.take_if(&Token::Close) {
                    return Err("missing `)` in filter".into());
                }
                Ok(inner)
            }
            Some(Token::Word(word)) => atom(&word),
            Some(other) => Err(format!(
                "expected a glob or `tag:NAME` before `{}`",
                other.text()
            )),
            None => Err("filter ends where a glob or `tag:NAME` was expected".into()),
        }
    }
}

fn atom(word: &str) -> Result<Expression, String> {
    if let Some(tag) = word.strip_prefix("tag:") {
        return Ok(Expression::Tag(tag.to_string()));
    }
    if let Some(glob) = word.strip_prefix("suite:") {
        return Ok(Expression::Suite(matcher(glob)?));
    }
    Ok(Expression::Name(matcher(
        word.strip_prefix("name:").unwrap_or(word),
    )?))
}

fn matcher(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad glob `{glob}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, name: &str, suite: &str, tags: &[&str]) -> bool {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Expression::parse(filter).unwrap().matches(&Subject {
            name,
            suite,
            tags: &tags,
        })
    }

    #[test]
    fn plain_globs_match_names() {
        assert!(matches("db/*", "db/migrate.sh", "db", &[]));
        assert!(!matches("db/*", "db/deep/x.sh", "db/deep", &[]));
        assert!(matches("db/**", "db/deep/x.sh", "db/deep", &[]));
        assert!(matches("t[!0-9]*", "tx.sh", "s", &[]));
    }

    #[test]
    fn operators_and_atoms() {
        assert!(matches("tag:slow & !net/*", "db/a", "db", &["slow"]));
        assert!(!matches("tag:slow & !net/*", "net/a", "net", &["slow"]));
        assert!(matches(
            "(suite:db | tag:db) & !tag:flaky",
            "x",
            "other",
            &["db"]
        ));
        assert!(!matches(
            "(suite:db | tag:db) & !tag:flaky",
            "x",
            "db",
            &["flaky"]
        ));
        assert!(matches("!tag:slow", "x", "s", &[]));
        assert!(
            matches("a | b & c", "a", "s", &[]),
            "& binds tighter than |"
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert!(Expression::parse("").unwrap_err().contains("empty"));
        assert!(Expression::parse("(a").unwrap_err().contains("missing `)`"));
        assert!(Expression::parse("a &").unwrap_err().contains("ends"));
        assert!(Expression::parse("a b")
            .unwrap_err()
            .contains("unexpected `b`"));
        assert!(Expression::parse("a[").unwrap_err().contains("bad glob"));
        assert!(Expression::parse("'a b")
            .unwrap_err()
            .contains("unclosed '"));
    }

    #[test]
    fn quotes_keep_spaces_and_operators() {
        let case = "mycrate tests::adds";
        assert!(matches("'mycrate tests::adds'", case, "mycrate", &[]));
        assert!(matches("\"mycrate tests::adds\"", case, "mycrate", &[]));
        assert!(!matches("'mycrate tests::add'", case, "mycrate", &[]));
        assert!(matches(
            "name:'mycrate *' & !tag:slow",
            case,
            "mycrate",
            &[]
        ));
        assert!(matches("suite:'a|b'", "x", "a|b", &[]));
    }
}
