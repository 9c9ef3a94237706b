//! The house stays in order: no `.rs` file over 700 lines (tests included), no function over
//! 120, and `ARCHITECTURE.md` names every top-level module and folder. Each check lists every
//! place that breaks it, so one run shows the whole list.

use std::path::{Path, PathBuf};

/// Longest `.rs` file, in lines.
const FILE_LINES: usize = 700;
/// Longest function, in lines from its `fn` line to its closing brace.
const FN_LINES: usize = 120;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file of the workspace (and fuzz/), outside `target/` folders.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn all_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    sources(&root(), &mut files);
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `(name, first line, lines)` of every function with a body in `text` (as rustfmt lays code
/// out: the body's closing brace alone on a line at the `fn` line's indentation).
pub fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let before = &trimmed[..at];
        let is_fn = before.split_whitespace().all(|w| {
            matches!(w, "pub" | "const" | "async" | "unsafe" | "extern" | "\"C\"")
                || w.starts_with("pub(")
        });
        if !is_fn || trimmed.starts_with("//") {
            continue;
        }
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let indent = &line[..line.len() - trimmed.len()];
        // A declaration without a body ends in `;` before any `{`.
        let head_end = lines[i..]
            .iter()
            .position(|l| {
                let l = l.trim_end();
                l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
            })
            .map(|k| i + k);
        let Some(head_end) = head_end else { continue };
        let head = lines[head_end].trim_end();
        if head.ends_with(';') || head.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(k) = lines[head_end + 1..].iter().position(|l| *l == close) {
            found.push((name, i + 1, head_end + 1 + k - i + 1));
        }
    }
    found
}

#[test]
fn no_file_over_700_lines_and_no_function_over_120() {
    let mut over = Vec::new();
    for path in all_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let n = text.lines().count();
        if n > FILE_LINES {
            over.push(format!(
                "{}: {n} lines (at most {FILE_LINES})",
                relative(&path)
            ));
        }
        for (name, line, len) in functions(&text) {
            if len > FN_LINES {
                over.push(format!(
                    "{}:{line}: fn {name} is {len} lines (at most {FN_LINES})",
                    relative(&path)
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "split these (the house's limits):\n{}",
        over.join("\n")
    );
}

#[test]
fn the_function_finder_measures_bodies_and_skips_declarations() {
    let text = "trait T {\n    fn decl(&self) -> u8;\n}\n\npub(crate) fn one(\n    a: u8,\n) -> u8 {\n    a\n}\n\nimpl X {\n    pub async fn two() {}\n    fn three() {\n        let f = || {\n        };\n    }\n}\n";
    let found = functions(text);
    assert_eq!(
        found,
        [("one".to_string(), 5, 5), ("three".to_string(), 13, 4)]
    );
}

/// One error style: `thiserror` types in the libraries, `anyhow` at the binaries' edges; a
/// `String` is never an error type.
#[test]
fn no_string_is_an_error_type() {
    let mut found = Vec::new();
    for path in all_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            // Spelled in pieces, so this test does not find itself.
            let string_error = [
                concat!("type Err", " = String"),
                concat!("type Error", " = String"),
            ]
            .iter()
            .any(|n| code.contains(n))
                || code
                    .find(concat!("Result", "<"))
                    .is_some_and(|at| code[at..].contains(concat!(", Str", "ing>")));
            if string_error {
                found.push(format!("{}:{}: {}", relative(&path), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a String as an error type (use a thiserror type):\n{}",
        found.join("\n")
    );
}

/// The modules a crate's root declares (`pub mod x;` / `mod x;`), as the file or folder each
/// lives in (`x.rs` or `x/`).
fn modules(crate_src: &Path, root_file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(crate_src.join(root_file)).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let name = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?
                .strip_suffix(';')?;
            Some(if crate_src.join(name).is_dir() {
                format!("{name}/")
            } else {
                format!("{name}.rs")
            })
        })
        .collect()
}

/// `ARCHITECTURE.md` names every top-level folder of the repository and every top-level
/// module of the streamer, the harness and xtask, as it is spelt in the tree.
#[test]
fn the_map_names_every_top_level_folder_and_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let skip = ["target", ".git", ".cargo"].contains(&name.as_str());
        if e.path().is_dir() && !skip && !map.contains(&format!("`{name}/`")) {
            missing.push(format!("the folder `{name}/`"));
        }
    }
    for (krate, root_file) in [
        ("streamer/src", "lib.rs"),
        ("harness/src", "lib.rs"),
        ("xtask/src", "main.rs"),
    ] {
        for m in modules(&root().join(krate), root_file) {
            if !map.contains(&format!("`{m}`")) {
                missing.push(format!("{krate}: `{m}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name:\n{}",
        missing.join("\n")
    );
}
