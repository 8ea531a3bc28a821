//! `<include file="..."/>`: every file a model includes is read, and its XML
//! checked, before anything of the model is parsed, so the element counts
//! are checked on the whole model before it is expanded. As in MuJoCo 4, an
//! included file is looked for in the main model's folder, then in the
//! including file's folder; its root is `<mujoco>`, whose children take the
//! `<include>`'s place; a file may be included once (a second inclusion, and
//! so a cycle, is an error).

use super::*;
use roxmltree::{Document, Node};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The most files one model may consist of (itself included).
const MAX_FILES: usize = 100;

/// The files of a model: the main file first, then the included ones in the
/// order they are included.
pub struct Files {
    pub ids: Vec<FileId>,
    /// The file an `<include>` brings in, by the including file and the
    /// byte offset of the `<include>` element.
    pub includes: HashMap<(FileId, usize), FileId>,
}

/// A diagnostic for XML that roxmltree cannot read, at the place it stopped.
pub fn xml_error(text: &str, file: FileId, e: &roxmltree::Error) -> Diagnostic {
    let pos = e.pos();
    let at = offset_of(text, pos.row as usize, pos.col as usize);
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    Diagnostic::error(
        "mjcf::xml",
        format!("this is not well-formed XML: {e}"),
        Span::new(file, at, end),
        "here",
    )
    .with_help("MJCF files are XML; check the tag and quoting near this point")
}

/// Byte offset of a 1-based row and column (in characters).
fn offset_of(text: &str, row: usize, col: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(row.saturating_sub(1))
        .map(str::len)
        .sum();
    let line = &text[line_start.min(text.len())..];
    line_start
        + line
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(line.len(), |(i, _)| i)
}

struct Loader<'s> {
    sources: &'s mut SourceMap,
    /// The main model's folder (as shown, as read).
    main: (PathBuf, Option<PathBuf>),
    files: Files,
    /// Every file read so far, by canonical path.
    seen: HashMap<PathBuf, FileId>,
    /// The files being read, outermost first (canonical path, name shown).
    stack: Vec<(PathBuf, String)>,
    diags: Vec<Diagnostic>,
}

/// Reads the files `root` includes, recursively, into `sources`. Errors
/// (XML that does not parse, a missing, repeated or cyclic include, a root
/// that is not `<mujoco>`) are located at the `<include>`.
pub fn load(sources: &mut SourceMap, root: FileId) -> Result<Files, Vec<Diagnostic>> {
    let folder = |p: &Path| p.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let main_file = sources.get(root);
    let main = (
        folder(Path::new(&main_file.name)),
        main_file.path.as_deref().map(folder),
    );
    let start = main_file
        .path
        .as_deref()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    let name = main_file.name.clone();
    let mut l = Loader {
        sources,
        main,
        files: Files {
            ids: vec![root],
            includes: HashMap::new(),
        },
        seen: HashMap::new(),
        stack: vec![],
        diags: vec![],
    };
    if let Some(c) = &start {
        l.seen.insert(c.clone(), root);
    }
    l.stack
        .push((start.unwrap_or_else(|| PathBuf::from(&name)), name));
    l.file(root);
    if l.diags.is_empty() {
        Ok(l.files)
    } else {
        Err(l.diags)
    }
}

impl Loader<'_> {
    /// Reads the includes of `file`, which is on top of the stack.
    fn file(&mut self, file: FileId) {
        let text = self.sources.get(file).text.clone();
        let doc = match Document::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                self.diags.push(xml_error(&text, file, &e));
                return;
            }
        };
        for n in doc.descendants().filter(|n| n.has_tag_name("include")) {
            if let Some(included) = self.include(file, n) {
                self.files
                    .includes
                    .insert((file, n.range().start), included);
            }
        }
    }

    /// Reads the file one `<include>` names (and, recursively, its includes).
    fn include(&mut self, file: FileId, n: Node) -> Option<FileId> {
        let tag = Span::new(file, n.range().start, n.range().start + "<include".len());
        let extra = n
            .attributes()
            .find(|a| a.name() != "file")
            .map(|a| a.range_qname())
            .or_else(|| n.first_element_child().map(|c| c.range()));
        if let Some(r) = extra {
            self.diags.push(
                Diagnostic::error(
                    "mjcf::invalid",
                    "`<include>` has only the attribute `file`",
                    Span::new(file, r.start, r.end),
                    "not allowed here",
                )
                .with_help("write `<include file=\"other.xml\"/>`"),
            );
            return None;
        }
        let Some(attr) = n.attribute_node("file") else {
            self.diags.push(
                Diagnostic::error("mjcf::invalid", "`<include>` needs `file`", tag, "no file")
                    .with_help("write `<include file=\"other.xml\"/>`"),
            );
            return None;
        };
        let at = Span::new(file, attr.range_value().start, attr.range_value().end);
        let rel = Path::new(attr.value());
        let here = self.sources.get(file);
        let Some(dir) = here
            .path
            .as_deref()
            .map(|p| p.parent().unwrap_or(Path::new("")))
        else {
            self.diags.push(
                Diagnostic::error(
                    "mjcf::include",
                    format!("cannot include `{}`: this model was not read from a file", rel.display()),
                    at,
                    "included here",
                )
                .with_help("import the model from its file (`joule import model.xml`), so included files can be found next to it"),
            );
            return None;
        };
        let shown_dir = Path::new(&here.name)
            .parent()
            .map_or_else(PathBuf::new, Path::to_path_buf);
        // MuJoCo's order: the main model's folder, then the including file's.
        let mut tried = vec![];
        if let Some(main) = &self.main.1 {
            tried.push((main.join(rel), self.main.0.join(rel)));
        }
        tried.push((dir.join(rel), shown_dir.join(rel)));
        let found = tried.iter().find(|(p, _)| std::fs::metadata(p).is_ok());
        let (path, shown) = found.or(tried.last()).cloned()?;
        let bytes = match crate::read_input(&path, crate::MAX_INPUT_BYTES) {
            Ok(b) => b,
            Err(e) => {
                let help = crate::read_help(&e).unwrap_or_else(|| match tried.as_slice() {
                    [(a, main), (b, here)] if a != b => format!(
                        "looked for as `{}` (next to the main model, where MuJoCo looks first) and as `{}` (next to the including file)",
                        main.display(),
                        here.display()
                    ),
                    _ => "the path is relative to the model's folder".into(),
                });
                self.diags.push(
                    Diagnostic::error(
                        "mjcf::include",
                        format!("cannot read the included file `{}`: {e}", shown.display()),
                        at,
                        "included here",
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        let canonical = path.canonicalize().unwrap_or(path.clone());
        if let Some(k) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let chain: Vec<&str> = self.stack[k..]
                .iter()
                .map(|(_, s)| s.as_str())
                .chain([self.stack[k].1.as_str()])
                .collect();
            self.diags.push(
                Diagnostic::error(
                    "mjcf::include",
                    format!("`<include>` cycle: {}", chain.join(" -> ")),
                    at,
                    "cycle closes here",
                )
                .with_help("remove one of the `<include>`s in the cycle"),
            );
            return None;
        }
        if self.seen.contains_key(&canonical) {
            self.diags.push(
                Diagnostic::error(
                    "mjcf::include",
                    format!("`{}` is already included", shown.display()),
                    at,
                    "second inclusion",
                )
                .with_help("MuJoCo includes a file at most once; remove this `<include>`"),
            );
            return None;
        }
        if self.files.ids.len() >= MAX_FILES {
            self.diags.push(
                Diagnostic::error(
                    "mjcf::too_large",
                    format!("the model includes more than {} files", MAX_FILES - 1),
                    at,
                    "one file too many",
                )
                .with_help("merge some of the included files"),
            );
            return None;
        }
        let text = match crate::decode_source(&bytes) {
            Ok(t) => t,
            Err((offset, why)) => {
                self.diags.push(
                    Diagnostic::error(
                        "mjcf::include",
                        format!(
                            "`{}` is not a text file: {why} at byte {offset}",
                            shown.display()
                        ),
                        at,
                        "included here",
                    )
                    .with_help("included files are MJCF (XML) text"),
                );
                return None;
            }
        };
        let shown = shown.display().to_string();
        let id = self.sources.add(shown.clone(), Some(&path), &text);
        self.seen.insert(canonical.clone(), id);
        self.files.ids.push(id);
        // The included root must be `<mujoco>`.
        if let Ok(doc) = Document::parse(&text) {
            let root = doc.root_element();
            if !root.has_tag_name("mujoco") {
                let start = root.range().start;
                self.diags.push(
                    Diagnostic::error(
                        "mjcf::include",
                        format!(
                            "the included file's root element is `<{}>`, not `<mujoco>`",
                            root.tag_name().name()
                        ),
                        Span::new(id, start, start + 1 + root.tag_name().name().len()),
                        "not MJCF",
                    )
                    .with_label(at, "included here")
                    .with_help("an included file is `<mujoco>` around the elements it adds"),
                );
                return None;
            }
        }
        self.stack.push((canonical, shown));
        self.file(id);
        self.stack.pop();
        Some(id)
    }
}
