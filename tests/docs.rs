//! The documentation stays true: every scene block in the README and `docs/`
//! parses (whole scenes also compile), every keyword of the grammar is
//! documented, and every subcommand of the CLI is in the README.

use std::process::Command;

const PAGES: &[&str] = &[
    "README.md",
    "docs/LANGUAGE.md",
    "docs/ARCHITECTURE.md",
    "docs/GRADIENTS.md",
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
