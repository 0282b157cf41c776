//! Splitting a shell line into words, so that values with spaces can be
//! quoted: `set greeting "hello world"`.
//!
//! Whitespace separates words. `"..."` groups, with the escapes `\"`, `\\`,
//! `\n`, `\t` and `\r`; `'...'` groups literally. A quoted part may join
//! the rest of its word, as in a POSIX shell (`a"b c"` is `ab c`), and `""`
//! is an empty word. A backslash outside quotes is an ordinary character,
//! so keys like `dir\file` need no escaping.

use std::iter::Peekable;
use std::str::Chars;

/// The words of `line`, or what is wrong with its quoting.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        words.push(word(&mut chars)?);
    }
}

/// One word, up to the next unquoted whitespace.
fn word(chars: &mut Peekable<Chars>) -> Result<String, String> {
    let mut word = String::new();
    while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
        match c {
            '"' => double_quoted(chars, &mut word)?,
            '\'' => single_quoted(chars, &mut word)?,
            _ => word.push(c),
        }
    }
    Ok(word)
}

fn double_quoted(chars: &mut Peekable<Chars>, word: &mut String) -> Result<(), String> {
    loop {
        match chars.next() {
            None => return Err("unterminated \" quote".into()),
            Some('"') => return Ok(()),
            Some('\\') => word.push(escaped(chars.next())?),
            Some(c) => word.push(c),
        }
    }
}

fn escaped(c: Option<char>) -> Result<char, String> {
    Ok(match c {
        None => return Err("unterminated \" quote".into()),
        Some('n') => '\n',
        Some('t') => '\t',
        Some('r') => '\r',
        Some(other) => other,
    })
}

fn single_quoted(chars: &mut Peekable<Chars>, word: &mut String) -> Result<(), String> {
    loop {
        match chars.next() {
            None => return Err("unterminated ' quote".into()),
            Some('\'') => return Ok(()),
            Some(c) => word.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(words("  set  k\tv "), ["set", "k", "v"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(words(r#"set k "hello world""#), ["set", "k", "hello world"]);
        assert_eq!(
            words(r#"set 'a b' "it's" "say \"hi\"\n""#),
            ["set", "a b", "it's", "say \"hi\"\n"]
        );
        assert_eq!(words(r#"a"b c"d '' """#), ["ab cd", "", ""]);
        assert_eq!(words(r"dir\file"), [r"dir\file"]);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(split(r#"set k "oops"#).is_err());
        assert!(split("set k 'oops").is_err());
        assert!(split(r#"set k "oops\"#).is_err());
    }
}
