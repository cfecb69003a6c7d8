//! The shape of `src/`: no import circle between modules, and no oversized file.
//!
//! Reads every `src/**/*.rs` as text (no build needed), strips comments, string literals and
//! `#[cfg(test)]` items, and collects each file's references to other modules of the crate
//! (`crate::a::b`, `super::x`, and `use crate::{a, b::{c}}` groups). Each reference points at
//! the longest module path that exists. Two graphs must be free of cycles:
//! - files: module → module, for every pair of files;
//! - top-level modules: the same edges, with each module folded into its first segment
//!   (`daemon::http` is `daemon`), so that folders layer cleanly too.
//!
//! A cycle is reported with the files on it and the lines that make each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`a::b`, or `crate` for lib.rs) → file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = match parts.as_slice() {
                [only] if only == "lib" => "crate".to_string(),
                [only] if only == "main" => continue, // the binary is not a crate module
                _ => parts.join("::"),
            };
            out.insert(name, path);
        }
    }
    out
}

/// The text with comments and string/char literals blanked (lines kept, so line numbers stay).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: u8| out.push(if c == b'\n' { '\n' } else { ' ' });
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let mut k = j + 1;
                while k < b.len() && !b[k..].starts_with(&close) {
                    k += 1;
                }
                let end = (k + close.len()).min(b.len());
                for &c in &b[i..end] {
                    blank(&mut out, c);
                }
                i = end;
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            blank(&mut out, b[i]);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            if i < b.len() {
                out.push(' ');
                i += 1;
            }
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime: keep lifetimes.
            let lit_end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // A multi-byte char literal: find the closing quote within 5 bytes.
                (i + 2..(i + 6).min(b.len()))
                    .find(|&k| b[k] == b'\'')
                    .filter(|_| b[i + 1] >= 0x80)
            };
            match lit_end {
                Some(end) => {
                    for &c in &b[i..=end] {
                        blank(&mut out, c);
                    }
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Blanks every item behind `#[cfg(test)]` (a `mod tests { … }` block, a `use`, a fn).
fn drop_test_items(text: &str) -> String {
    let mut out = text.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|p| p + from) {
        let bytes = out.as_bytes();
        // The item ends at the first `;` before any `{`, or at the `}` closing the first `{`.
        let mut i = at + "#[cfg(test)]".len();
        let mut depth = 0usize;
        let mut end = bytes.len();
        while i < bytes.len() {
            match bytes[i] {
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let blanked: String = out[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blanked);
        from = end;
    }
    out
}

/// Expands a `use` tree (the text after `crate::` / `super::`) into its leaf paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            expand(p)
                .into_iter()
                .map(move |leaf| format!("{prefix}{leaf}"))
        })
        .collect()
}

/// Every module path a file's code refers to, with the line it is on.
fn references(code: &str, module: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let parent: Vec<&str> = if module == "crate" {
        vec![]
    } else {
        module.split("::").collect()
    };
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(anchor).map(|p| p + from) {
            from = p + anchor.len();
            // Inside a longer path (`x::crate`, `super::super::`): counted from its start.
            if p > 0 && (is_ident(code.as_bytes()[p - 1]) || code.as_bytes()[p - 1] == b':') {
                continue;
            }
            // Read the path, including a `{…}` group.
            let rest = &code[from..];
            let mut end = 0;
            let mut depth = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth > 0 => depth -= 1,
                    c if depth > 0 || is_ident(c as u8) || c == ':' => {}
                    _ => {
                        end = i;
                        break;
                    }
                }
                end = i + c.len_utf8();
            }
            let line = code[..p].matches('\n').count() + 1;
            for leaf in expand(&rest[..end]) {
                let mut segs: Vec<String> = if anchor == "super::" {
                    let mut base: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
                    // `super` of a file's module is its parent (mod.rs files are their folder).
                    base.pop();
                    base
                } else {
                    vec![]
                };
                let mut rel = leaf.as_str();
                while let Some(r) = rel.strip_prefix("super::") {
                    segs.pop();
                    rel = r;
                }
                segs.extend(
                    rel.split("::")
                        .filter(|s| !s.is_empty() && *s != "self")
                        .map(String::from),
                );
                out.push((segs.join("::"), line));
            }
        }
    }
    out
}

/// The longest existing module that `path` starts with.
fn resolve(path: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| known.contains_key(m))
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Strongly connected components with more than one node (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(edges) = t.g.get(v) {
            for w in edges.keys() {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        out: vec![],
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn describe(graph: &Graph, comp: &[String]) -> String {
    let mut text = format!("circle of {} modules: {}\n", comp.len(), comp.join(", "));
    for a in comp {
        for (b, why) in graph.get(a).into_iter().flatten() {
            if comp.contains(b) {
                text.push_str(&format!("  {a} -> {b} ({})\n", why.join(", ")));
            }
        }
    }
    text
}

fn graphs() -> (Graph, Graph) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let (mut files, mut tops) = (Graph::new(), Graph::new());
    for (module, path) in &known {
        let text = std::fs::read_to_string(path).unwrap();
        let code = drop_test_items(&strip(&text));
        files.entry(module.clone()).or_default();
        let rel = path.strip_prefix(&src).unwrap().display().to_string();
        for (reference, line) in references(&code, module) {
            let Some(target) = resolve(&reference, &known) else {
                continue;
            };
            let from_top = module.split("::").next().unwrap().to_string();
            let to_top = target.split("::").next().unwrap().to_string();
            let why = format!("{rel}:{line}");
            if &target != module && target != "crate" {
                let e = files.entry(module.clone()).or_default();
                e.entry(target.clone()).or_default().push(why.clone());
            }
            if from_top != to_top && from_top != "crate" && to_top != "crate" {
                let e = tops.entry(from_top).or_default();
                e.entry(to_top).or_default().push(why);
            }
        }
    }
    (files, tops)
}

#[test]
fn no_import_circle_between_modules() {
    let (files, tops) = graphs();
    assert!(files.len() > 10, "found only {} modules", files.len());
    let mut report = String::new();
    for comp in cycles(&files) {
        report.push_str(&describe(&files, &comp));
    }
    for comp in cycles(&tops) {
        report.push_str("top-level ");
        report.push_str(&describe(&tops, &comp));
    }
    assert!(report.is_empty(), "import circles in src/:\n{report}");
}

#[test]
fn the_checker_sees_what_it_must() {
    let code = strip(
        "use crate::{a::{b, c::D}, e};\n// crate::nope\nlet s = \"crate::nope\";\nlet c = '\"';\nsuper::super::f::g();\n",
    );
    let refs: Vec<String> = references(&code, "x::y::z")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(refs, ["a::b", "a::c::D", "e", "x::f::g"]);
    let no_tests =
        drop_test_items("fn a() {}\n#[cfg(test)]\nmod tests { use crate::q; }\nuse crate::r;");
    let refs: Vec<String> = references(&no_tests, "m")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(refs, ["r"]);
    // A circle is found, and a layered graph is not one.
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().insert(b.into(), vec![]);
    }
    assert_eq!(cycles(&g), [vec!["a", "b", "c"]]);
    g.get_mut("c").unwrap().remove("a");
    assert!(cycles(&g).is_empty());
}

/// Files over this many lines are split (issue #10): a file should hold one thing.
const MAX_LINES: usize = 450;

#[test]
fn no_oversized_source_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut big = Vec::new();
    for path in modules(&src).values() {
        let n = std::fs::read_to_string(path).unwrap().lines().count();
        if n > MAX_LINES {
            big.push(format!("{} has {n} lines", path.display()));
        }
    }
    assert!(
        big.is_empty(),
        "split these (at most {MAX_LINES} lines each): {big:?}"
    );
}

/// Functions over this many lines need a `// Long: why` comment above them (issue #10).
const MAX_FN_LINES: usize = 80;

#[test]
fn no_long_function_without_a_reason() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for path in modules(&src).values() {
        let text = std::fs::read_to_string(path).unwrap();
        let code = drop_test_items(&strip(&text));
        let code_lines: Vec<&str> = code.lines().collect();
        let text_lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < code_lines.len() {
            let line = code_lines[i].trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) fn ",
            ]
            .iter()
            .chain(&[
                "pub(super) fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
            ])
            .any(|p| line.starts_with(p));
            if !is_fn {
                i += 1;
                continue;
            }
            // The body: from the first `{` to its match (a `;` first means no body).
            let (mut depth, mut started, mut end) = (0i32, false, None);
            'body: for (j, l) in code_lines.iter().enumerate().skip(i) {
                for c in l.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            started = true;
                        }
                        '}' => depth -= 1,
                        ';' if !started => break 'body,
                        _ => {}
                    }
                    if started && depth == 0 {
                        end = Some(j);
                        break 'body;
                    }
                }
            }
            let Some(end) = end else {
                i += 1;
                continue;
            };
            let lines = end - i + 1;
            // The comments and attributes right above the fn.
            let reason = text_lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("//") || t.starts_with("#[")
                })
                .any(|l| l.trim_start().starts_with("// Long:"));
            if lines > MAX_FN_LINES && !reason {
                long.push(format!("{}:{} ({lines} lines)", path.display(), i + 1));
            }
            i = end + 1;
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines without a `// Long: why` comment: {long:?}"
    );
}
