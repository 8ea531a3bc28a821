//! The documentation stays true: every scene block in the README and `docs/`
//! parses (whole scenes also compile), a block that names its file is that
//! file, every keyword of the grammar is
//! documented, every subcommand of the CLI is in the README, and every path
//! the "Layout" sections name exists.

use std::path::Path;
use std::process::Command;

const PAGES: &[&str] = &[
    "README.md",
    "docs/LANGUAGE.md",
    "docs/ARCHITECTURE.md",
    "docs/GRADIENTS.md",
    "docs/guide.md",
];

/// The ```joule blocks of a Markdown page, with their line numbers.
fn joule_blocks(page: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(page).expect("page");
    let mut blocks = vec![];
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```joule") => current = Some((n + 1, String::new())),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some((_, b)), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn scene_blocks_in_the_docs_parse_and_whole_scenes_compile() {
    let mut seen = 0;
    for page in PAGES {
        for (line, block) in joule_blocks(page) {
            seen += 1;
            let (ast, diags) = joule_grammar::parse(0, &block);
            assert!(diags.is_empty(), "{page}:{line}: {}", diags[0].message);
            let whole = ast
                .items
                .iter()
                .any(|i| matches!(i.kind, joule_grammar::ast::ItemKind::Scene(_)));
            if whole {
                let c = joule::check_source(page, &block);
                assert!(
                    c.ok(),
                    "{page}:{line}:\n{}",
                    c.render_diagnostics(false, 100)
                );
            }
        }
    }
    assert!(seen >= 3, "found {seen} blocks");
}

#[test]
fn scene_blocks_that_name_a_file_are_that_file() {
    // A block whose first line is `// file: PATH` shows a shipped file whole.
    let mut seen = 0;
    for page in PAGES {
        for (line, block) in joule_blocks(page) {
            let Some(path) = block
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("// file: "))
            else {
                continue;
            };
            let file = std::fs::read_to_string(path.trim()).expect("the named file");
            assert_eq!(block, file, "{page}:{line}: the block differs from {path}");
            seen += 1;
        }
    }
    assert!(seen >= 1, "found {seen} blocks naming files");
}

#[test]
fn every_keyword_is_in_the_language_reference() {
    let reference = std::fs::read_to_string("docs/LANGUAGE.md").expect("page");
    let missing: Vec<&&str> = joule_grammar::KEYWORDS
        .iter()
        .filter(|k| !reference.contains(&format!("`{k}")))
        .collect();
    assert!(missing.is_empty(), "undocumented keywords: {missing:?}");
}

#[test]
fn every_subcommand_is_in_the_readme() {
    let o = Command::new(env!("CARGO_BIN_EXE_joule"))
        .arg("--help")
        .output()
        .expect("joule runs");
    let help = String::from_utf8(o.stdout).expect("utf-8");
    let readme = std::fs::read_to_string("README.md").expect("readme");
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 7, "{commands:?}");
    for c in commands {
        assert!(
            readme.contains(&format!("`joule {c}")),
            "README lacks `joule {c}`"
        );
    }
}

/// The lines of the first code block after the `## Layout` heading of a page.
fn layout_block(page: &str) -> Vec<String> {
    let text = std::fs::read_to_string(page).expect("page");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "## Layout")
        .skip_while(|l| !l.starts_with("```"));
    assert!(
        lines.next().is_some(),
        "{page}: no code block under `## Layout`"
    );
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(str::to_string)
        .collect()
}

/// The words of a layout line that name files or folders: `name/`, or a name
/// with one of the project's file extensions (`fmt.rs`, `joule.pest`).
fn paths_in(text: &str) -> Vec<String> {
    const EXTENSIONS: &[&str] = &[
        "rs", "pest", "joule", "md", "toml", "py", "sh", "json", "xml", "html",
    ];
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '`'))
        .map(|w| w.trim_end_matches([':', '.']))
        .filter(|w| {
            let plain = w.chars().any(|c| c.is_ascii_alphanumeric())
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
            let file = w
                .rsplit_once('.')
                .is_some_and(|(stem, ext)| !stem.is_empty() && EXTENSIONS.contains(&ext));
            plain && (w.ends_with('/') || file)
        })
        .map(str::to_string)
        .collect()
}

/// Every path in the Layout sections exists. A line that starts in the first
/// column names a path from the repository root (`compiler/`); an indented
/// line that starts with a path names one inside the last such folder or its
/// `src/` (`resolve/` under `compiler/`); any other path in a description is
/// looked up from the root, in the entry's folder and in its `src/`.
#[test]
fn every_path_in_the_layout_sections_exists() {
    let mut missing = vec![];
    let mut checked = 0;
    for page in ["README.md", "docs/ARCHITECTURE.md"] {
        let mut folder = String::new();
        for line in layout_block(page) {
            let head = line.split_whitespace().next().unwrap_or("");
            if !line.starts_with(' ') && !head.is_empty() {
                assert!(
                    Path::new(head).exists(),
                    "{page}: the Layout entry `{head}` does not exist"
                );
                checked += 1;
                folder = if head.ends_with('/') {
                    head.to_string()
                } else {
                    String::new()
                };
            }
            let rest = if line.starts_with(' ') {
                &line[..]
            } else {
                &line[head.len()..]
            };
            for p in paths_in(rest) {
                checked += 1;
                let found = [
                    p.clone(),
                    format!("{folder}{p}"),
                    format!("{folder}src/{p}"),
                ]
                .iter()
                .any(|c| Path::new(c).exists());
                if !found {
                    missing.push(format!("{page}: `{p}` (under `{folder}`)"));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} paths found in the Layout sections"
    );
    assert!(
        missing.is_empty(),
        "paths in Layout sections that do not exist:\n  {}",
        missing.join("\n  ")
    );
}

/// Calls `f` on every `<!-- KIND...: COMMAND => REST -->` mark of the pages
/// in `docs/` (`KIND` is `reproduce`, whose marks may read
/// `reproduce[quick]:`, or `replay`): where it is (`page:line`), the page's
/// text, the command's words and `REST`, after checking that the command
/// names a scene that exists. Returns how many marks there were.
fn for_each_mark(kind: &str, mut f: impl FnMut(&str, &str, &[&str], &str)) -> usize {
    let mut seen = 0;
    for entry in std::fs::read_dir("docs").expect("docs") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("page");
        for (start, _) in text.match_indices(&format!("<!-- {kind}")) {
            let end = start + text[start..].find("-->").expect("a closed mark");
            let at = format!("{}:{}", path.display(), text[..start].lines().count() + 1);
            let body = text[start..end].split_once(':').expect("`KIND:`").1;
            let (command, rest) = body.split_once("=>").expect("`=>`");
            let words: Vec<&str> = command.split_whitespace().collect();
            let scene = words.get(1).expect("a scene");
            assert!(Path::new(scene).is_file(), "{at}: no {scene}");
            f(&at, &text, &words, rest.trim());
            seen += 1;
        }
    }
    seen
}

/// The `<!-- reproduce: COMMAND => KEY VALUE, .. -->` marks that
/// `docs/check_numbers.py` re-runs stay well formed: a `joule` subcommand
/// on a scene that exists, and numeric documented values.
#[test]
fn reproduce_marks_name_existing_scenes_and_numbers() {
    let seen = for_each_mark("reproduce", |at, _, words, values| {
        assert!(
            matches!(
                words.first(),
                Some(&("train" | "run" | "grad" | "bench" | "imitate" | "optimize"))
            ),
            "{at}: {}",
            words.join(" ")
        );
        for pair in values.split(',') {
            let kv: Vec<&str> = pair.split_whitespace().collect();
            assert!(
                kv.len() == 2 && kv[1].parse::<f64>().is_ok(),
                "{at}: `{pair}` is not KEY NUMBER"
            );
        }
    });
    assert!(seen >= 10, "found {seen} marks");
}

/// The replays of documented results (`docs/replays/`): each page has one
/// `<!-- replay: run SCENE ... => docs/replays/NAME.html -->` mark, which
/// `docs/check_numbers.py` re-runs and compares byte for byte, on a scene
/// that exists, in the page that links it; and each loads the vendored
/// three.js from `src/vendor/` instead of holding a copy.
#[test]
fn replays_are_marked_linked_and_load_the_vendored_three() {
    let mut marked = std::collections::BTreeMap::new();
    for_each_mark("replay", |at, text, words, page| {
        assert_eq!(words.first(), Some(&"run"), "{at}: {}", words.join(" "));
        let name = page
            .strip_prefix("docs/replays/")
            .filter(|n| n.ends_with(".html"))
            .unwrap_or_else(|| panic!("{at}: `{page}` is not docs/replays/NAME.html"));
        assert!(
            [")", "#"]
                .iter()
                .any(|end| text.contains(&format!("](replays/{name}{end}"))),
            "{at}: the page does not link replays/{name}"
        );
        assert!(
            marked.insert(name.to_string(), at.to_string()).is_none(),
            "{at}: {name} is marked twice"
        );
    });
    let three = r#"<script src="../../src/vendor/three.min.js"></script>"#;
    let mut files = 0;
    for entry in std::fs::read_dir("docs/replays").expect("docs/replays") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            marked.remove(&name).is_some(),
            "docs/replays/{name} has no replay mark"
        );
        let html = std::fs::read_to_string(&path).expect("a page");
        assert_eq!(html.matches(three).count(), 1, "{name}: {three}");
        assert!(html.len() < 3_000_000, "{name}: {} bytes", html.len());
        files += 1;
    }
    assert!(marked.is_empty(), "marked pages missing: {marked:?}");
    assert!(files >= 4, "only {files} replays");
}
