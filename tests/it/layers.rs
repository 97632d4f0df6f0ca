//! The core's layers, checked: no file of `src/` names a module of a layer above its
//! own (ARCHITECTURE.md, "Layers"). Cargo keeps the faces apart (each is its own crate,
//! and the core depends on none of them); inside the core, this test reads every file's
//! `crate::<module>` paths, outside comments and its `#[cfg(test)]` module, and compares
//! the layers.

use std::collections::BTreeMap;
use std::path::Path;

/// Each module of `src/` and its layer: a module may name modules of lower layers (and
/// its own files), never of its own layer or above.
const LAYERS: &[(&str, u8)] = &[
    ("time", 0),
    ("ids", 0),
    ("suggest", 0),
    ("codec", 0),
    ("bucket", 1),
    ("rules", 1),
    ("feed", 1),
    ("context", 2),
    ("html", 2),
    ("http", 3),
    ("token", 4),
    ("destination", 4),
    ("bundle", 5),
    ("decide", 6),
    ("view", 7),
    ("record", 7),
    ("deliver", 7),
    ("confirm", 7),
    ("profile", 8),
    ("session", 9),
    ("calls", 10),
    ("ofrep", 10),
];

/// The code of a file without its comments and its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_of_the_core_names_a_layer_above_its_own() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = crate::repo_path("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut violations = Vec::new();
    let mut checked = 0;
    for path in all {
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue;
        }
        let own = *layers
            .get(module.as_str())
            .unwrap_or_else(|| panic!("src/{relative}: module {module} has no layer in LAYERS"));
        let text = code(&std::fs::read_to_string(&path).unwrap());
        for (at, _) in text.match_indices("crate::") {
            let named: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if named == module || named.is_empty() {
                continue;
            }
            checked += 1;
            match layers.get(named.as_str()) {
                Some(&layer) if layer < own => {}
                // Items re-exported at the crate root (`crate::Decision`) start with a
                // capital and never get here; a lower-case root item is a function.
                None if !text[at + 7..].starts_with(&format!("{named}::")) => {}
                _ => violations.push(format!(
                    "src/{relative} ({module}, layer {own}) names crate::{named}"
                )),
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths read: the scan is broken"
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
