//! Finds where a JSON path sits in source text, for `line:column` in diagnostics.
//!
//! serde_json keeps no positions, so validation reports paths and this scanner maps
//! them back: it walks the text once along the path, skipping every other value. It
//! never fails loudly: a path it cannot follow maps to the deepest place it reached.

/// One step of a path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// The 1-based line and column of the value at `path` (or of the closest enclosing
/// value that exists).
pub(crate) fn locate(source: &str, path: &[Step]) -> (usize, usize) {
    let mut scanner = Scanner {
        bytes: source.as_bytes(),
        pos: 0,
    };
    scanner.skip_ws();
    let offset = scanner.descend(path).unwrap_or(scanner.pos);
    line_column(source, offset)
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Scanner<'s> {
    bytes: &'s [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Returns the offset of the value at `path`, starting at the value under the cursor.
    fn descend(&mut self, path: &[Step]) -> Option<usize> {
        let start = self.pos;
        let Some((step, rest)) = path.split_first() else {
            return Some(start);
        };
        match (self.peek()?, step) {
            (b'{', Step::Key(wanted)) => {
                self.pos += 1;
                loop {
                    self.skip_ws();
                    if self.peek()? == b'}' {
                        return Some(start);
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if &key == wanted {
                        return self.descend(rest).or(Some(start));
                    }
                    self.skip_value()?;
                    self.skip_ws();
                    if self.peek()? == b',' {
                        self.pos += 1;
                    }
                }
            }
            (b'[', Step::Index(wanted)) => {
                self.pos += 1;
                let mut index = 0;
                loop {
                    self.skip_ws();
                    if self.peek()? == b']' {
                        return Some(start);
                    }
                    if index == *wanted {
                        return self.descend(rest).or(Some(start));
                    }
                    self.skip_value()?;
                    index += 1;
                    self.skip_ws();
                    if self.peek()? == b',' {
                        self.pos += 1;
                    }
                }
            }
            _ => Some(start),
        }
    }

    /// Reads a string literal and returns its unescaped text.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.skip_string()?;
        serde_json::from_slice(self.bytes.get(start..self.pos)?).ok()
    }

    fn skip_string(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                loop {
                    self.skip_ws();
                    let c = self.peek()?;
                    if c == close {
                        self.pos += 1;
                        return Some(());
                    }
                    match c {
                        b',' | b':' => self.pos += 1,
                        _ => self.skip_value()?,
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let src = "{\n  \"a\": [1, {\"b\": \"x\"}],\n  \"c\": {\"d\": true}\n}";
        assert_eq!(
            locate(
                src,
                &[Step::Key("a".into()), Step::Index(1), Step::Key("b".into())]
            ),
            (2, 18)
        );
        assert_eq!(
            locate(src, &[Step::Key("c".into()), Step::Key("d".into())]),
            (3, 14)
        );
        // A missing key points at the enclosing object.
        assert_eq!(
            locate(src, &[Step::Key("c".into()), Step::Key("zz".into())]),
            (3, 8)
        );
        assert_eq!(locate("[", &[Step::Index(3)]), (1, 2));
    }
}
