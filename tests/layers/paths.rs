//! The paths a Rust source names: a tokenizer that skips comments, strings and char literals,
//! and a reader of `use` trees and `crate::` / `super::` paths that tracks inline `mod` blocks.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Dollar,
    Other,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

/// Reads the source into the tokens paths are made of; comments, strings and char literals
/// are skipped (their braces and `crate::` do not count).
pub fn tokenize(src: &str) -> Vec<Token> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        out: Vec::new(),
    };
    while lexer.i < lexer.chars.len() {
        lexer.step();
    }
    lexer.out
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer {
    fn at(&self, i: usize) -> char {
        self.chars.get(i).copied().unwrap_or('\0')
    }

    fn push(&mut self, tok: Tok) {
        let line = self.line;
        self.out.push(Token { tok, line });
    }

    /// Reads one token (or skips one comment, string or literal).
    fn step(&mut self) {
        let (c, next) = (self.at(self.i), self.at(self.i + 1));
        match c {
            '\n' => {
                self.line += 1;
                self.i += 1;
            }
            c if c.is_whitespace() => self.i += 1,
            '/' if next == '/' => {
                while self.i < self.chars.len() && self.chars[self.i] != '\n' {
                    self.i += 1;
                }
            }
            '/' if next == '*' => self.i = block_comment(&self.chars, self.i, &mut self.line),
            '"' => self.i = string(&self.chars, self.i + 1, 0, &mut self.line),
            '\'' => self.i = quote(&self.chars, self.i),
            ':' if next == ':' => {
                self.push(Tok::Sep);
                self.i += 2;
            }
            c if c.is_alphabetic() || c == '_' => self.word(),
            c if c.is_ascii_digit() => {
                self.i = self.word_end(self.i);
                self.push(Tok::Other);
            }
            c => {
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ';' => Tok::Semi,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    '$' => Tok::Dollar,
                    _ => Tok::Other,
                };
                self.push(tok);
                self.i += 1;
            }
        }
    }

    fn word_end(&self, mut end: usize) -> usize {
        while end < self.chars.len()
            && (self.chars[end].is_alphanumeric() || self.chars[end] == '_')
        {
            end += 1;
        }
        end
    }

    /// An identifier, or the prefix of a byte, C or raw string (`b"`, `r#"`), or a raw
    /// identifier (`r#type`, never a path keyword).
    fn word(&mut self) {
        let end = self.word_end(self.i);
        let word: String = self.chars[self.i..end].iter().collect();
        let (after, then) = (self.at(end), self.at(end + 1));
        let prefix = matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr");
        let raw = word.contains('r') && after == '#';
        if word == "r" && after == '#' && then != '"' && then != '#' {
            self.push(Tok::Other);
            self.i = end + 1;
        } else if prefix && (raw || after == '"') {
            let hashes = self.chars[end..].iter().take_while(|c| **c == '#').count();
            let closing = if word.contains('r') { hashes + 1 } else { 0 };
            self.i = string(&self.chars, end + hashes + 1, closing, &mut self.line);
        } else {
            self.push(Tok::Ident(word));
            self.i = end;
        }
    }
}

/// Skips a (nested) block comment starting at `i`; returns the index after it.
fn block_comment(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied().unwrap_or('\0')) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            (c, _) => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Skips a string body from `i` (after the opening quote); `raw` is 0 for an escaped string,
/// else 1 + the number of `#`s that close it. Returns the index after the closing quote.
fn string(chars: &[char], mut i: usize, raw: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' if raw == 0 => i += 2,
            '"' => {
                let hashes = raw.saturating_sub(1);
                let closing = chars[i + 1..].iter().take(hashes).all(|c| *c == '#');
                if raw == 0 || (closing && chars.len() > i + hashes) {
                    return i + 1 + hashes;
                }
                i += 1;
            }
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Skips a char literal (`'{'`, `'\n'`) or a lifetime's quote at `i`.
fn quote(chars: &[char], i: usize) -> usize {
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        j + 1
    } else if at(i + 2) == '\'' {
        i + 3
    } else {
        i + 1
    }
}

/// One path that may name another module, where it was written and in which inline module.
#[derive(Debug, Clone)]
pub struct Found {
    pub line: usize,
    /// Inline `mod` blocks around it (`tests`, …).
    pub inline: Vec<String>,
    pub path: Vec<String>,
}

/// Every `use` leaf and every `crate::x` / `super::…::x` path of a token stream.
pub fn paths(tokens: &[Token]) -> Vec<Found> {
    let ident = |i: usize| match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(word)) => Some(word.as_str()),
        _ => None,
    };
    let is = |i: usize, tok: Tok| tokens.get(i).is_some_and(|t| t.tok == tok);
    let (mut out, mut mods, mut depth, mut i) = (Vec::new(), Vec::<(String, usize)>::new(), 0, 0);
    while i < tokens.len() {
        let inline: Vec<String> = mods.iter().map(|(name, _)| name.clone()).collect();
        match (&tokens[i].tok, ident(i)) {
            (_, Some("mod")) if ident(i + 1).is_some() && is(i + 2, Tok::Open) => {
                depth += 1;
                mods.push((ident(i + 1).unwrap_or_default().to_string(), depth));
                i += 3;
            }
            (_, Some("use")) => {
                i += 1;
                let mut leaves = Vec::new();
                use_tree(tokens, &mut i, Vec::new(), &mut leaves);
                for (line, path) in leaves {
                    let inline = inline.clone();
                    out.push(Found { line, inline, path });
                }
            }
            (_, Some(head @ ("crate" | "super")))
                if is(i + 1, Tok::Sep)
                    && !(i > 0 && matches!(tokens[i - 1].tok, Tok::Sep | Tok::Dollar)) =>
            {
                let mut path = vec![head.to_string()];
                let mut j = i + 2;
                while let Some(word) = ident(j) {
                    path.push(word.to_string());
                    if word != "super" || !is(j + 1, Tok::Sep) {
                        break;
                    }
                    j += 2;
                }
                out.push(Found {
                    line: tokens[i].line,
                    inline,
                    path,
                });
                i = j + 1;
            }
            (Tok::Open, _) => {
                depth += 1;
                i += 1;
            }
            (Tok::Close, _) => {
                if mods.last().is_some_and(|(_, at)| *at == depth) {
                    mods.pop();
                }
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses one use tree from `i`, adding each leaf path (with its line) under `prefix`.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    mut path: Vec<String>,
    out: &mut Vec<(usize, Vec<String>)>,
) {
    while let Some(token) = tokens.get(*i) {
        match &token.tok {
            Tok::Ident(word) => {
                path.push(word.clone());
                *i += 1;
                if tokens.get(*i).is_some_and(|t| t.tok == Tok::Sep) {
                    *i += 1;
                    continue;
                }
                out.push((token.line, path));
                return;
            }
            Tok::Sep => *i += 1,
            Tok::Star => {
                out.push((token.line, path));
                *i += 1;
                return;
            }
            Tok::Open => {
                *i += 1;
                while tokens.get(*i).is_some_and(|t| t.tok != Tok::Close) {
                    use_tree(tokens, i, path.clone(), out);
                    while tokens
                        .get(*i)
                        .is_some_and(|t| !matches!(t.tok, Tok::Comma | Tok::Close))
                    {
                        *i += 1; // `as name`
                    }
                    if tokens.get(*i).is_some_and(|t| t.tok == Tok::Comma) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}
