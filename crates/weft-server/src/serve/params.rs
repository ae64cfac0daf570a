//! `?` parameters, as DB-API and JDBC clients write them, turned into the `$1, $2, ...` that
//! DataFusion understands. Only real placeholders are touched: a `?` inside a string literal,
//! a quoted identifier or a comment stays as it is.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Rewrites each `?` placeholder of `sql` to `$n`, numbered from 1 in order of appearance.
/// Returns `sql` unchanged when it has none; mixing `?` with `$n` is an error.
pub(crate) fn number_placeholders(sql: &str) -> Result<String, String> {
    let tokens = match Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        // A statement the tokenizer rejects is left for the parser to report.
        Err(_) => return Ok(sql.to_string()),
    };
    let mut questions = Vec::new();
    let mut numbered = false;
    for token in &tokens {
        if let Token::Placeholder(p) = &token.token {
            if p == "?" {
                questions.push(token.span.start);
            } else if p.starts_with('$') {
                numbered = true;
            }
        }
    }
    if questions.is_empty() {
        return Ok(sql.to_string());
    }
    if numbered {
        return Err("the statement mixes `?` and `$n` parameters; use one style".into());
    }
    // Byte offset of each line start: locations are 1-based lines and columns in chars.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut offsets = Vec::with_capacity(questions.len());
    for location in questions {
        let start = line_starts
            .get((location.line as usize).saturating_sub(1))
            .copied()
            .ok_or("a parameter's position is outside the statement")?;
        let offset = sql[start..]
            .char_indices()
            .nth((location.column as usize).saturating_sub(1))
            .map(|(i, _)| start + i)
            .filter(|&i| sql[i..].starts_with('?'))
            .ok_or("a parameter's position is outside the statement")?;
        offsets.push(offset);
    }
    let mut out = String::with_capacity(sql.len() + 2 * offsets.len());
    let mut last = 0;
    for (n, offset) in offsets.into_iter().enumerate() {
        out.push_str(&sql[last..offset]);
        out.push_str(&format!("${}", n + 1));
        last = offset + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::number_placeholders;

    #[test]
    fn numbers_question_marks_outside_literals() {
        assert_eq!(
            number_placeholders("SELECT * FROM t WHERE a = ? AND b > ?").unwrap(),
            "SELECT * FROM t WHERE a = $1 AND b > $2"
        );
        assert_eq!(
            number_placeholders("SELECT 'why?', \"c?\" -- ok?\nFROM t WHERE x = ?").unwrap(),
            "SELECT 'why?', \"c?\" -- ok?\nFROM t WHERE x = $1"
        );
        assert_eq!(
            number_placeholders("SELECT 'é', ? /* ? */, ?").unwrap(),
            "SELECT 'é', $1 /* ? */, $2"
        );
        assert_eq!(number_placeholders("SELECT $1").unwrap(), "SELECT $1");
        assert!(number_placeholders("SELECT $1, ?").is_err());
    }
}
