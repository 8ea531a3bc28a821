//! Line editing for the REPL: tab completion of commands and scene names, and
//! multi-line input (a line with an open bracket, brace or trailing operator
//! continues on the next).

use joule_grammar::trivia;
use rustyline::completion::{Completer, Pair};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};
use std::cell::RefCell;
use std::rc::Rc;

/// The REPL's commands with their argument synopsis, as `:help` lists them.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        ":load",
        "FILE",
        "compile a scene file (the state starts at its initial values)",
    ),
    (
        ":reload",
        "",
        "read the file again, keep the items typed since, reset the state",
    ),
    (":step", "[N]", "advance N steps (default 1)"),
    (
        ":run",
        "N",
        "advance N steps and print every observation, reward, loss and done",
    ),
    (":reset", "", "back to the initial state (time 0)"),
    (
        ":set",
        "NAME VALUE",
        "set a parameter or a control (`u[2]`)",
    ),
    (
        ":get",
        "NAME",
        "print a parameter, control or output at the current state",
    ),
    (
        ":grad",
        "NAME [N] [wrt A,B]",
        "gradient of a loss (after N steps from here, default 1) or reward (summed)",
    ),
    (
        ":info",
        "",
        "what the scene has: DOFs, parameters, controls, outputs, energies",
    ),
    (
        ":emit",
        "ast|model|ir|grad-ir [TEMPLATE]",
        "print an intermediate form (IR narrowed to one template)",
    ),
    (":time", "", "toggle printing the wall time of each command"),
    (
        ":save",
        "FILE",
        "write the scene with the items typed in this session",
    ),
    (":help", "", "this list"),
    (":quit", "", "leave (also Ctrl-D)"),
];

/// Names offered by tab completion; refreshed by the session after each compile.
pub type Names = Rc<RefCell<Vec<String>>>;

/// The rustyline helper.
#[derive(Helper, Highlighter, Hinter)]
pub struct ReplHelper {
    /// Scene names (params, particles, bodies, outputs, templates).
    pub names: Names,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        let pair = |s: &str| Pair {
            display: s.to_string(),
            replacement: s.to_string(),
        };
        let found: Vec<Pair> = if word.starts_with(':') && start == 0 {
            COMMANDS
                .iter()
                .filter(|(c, ..)| c.starts_with(word))
                .map(|(c, ..)| pair(c))
                .collect()
        } else {
            self.names
                .borrow()
                .iter()
                .filter(|n| n.starts_with(word))
                .map(|n| pair(n))
                .collect()
        };
        Ok((start, found))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

/// Whether `input` is a whole command or item: brackets closed (outside
/// comments and strings) and not ending in an operator, `=` or `,`.
pub fn is_complete(input: &str) -> bool {
    let comments = trivia::comments(input);
    if comments.iter().any(|c| !c.closed) {
        return false;
    }
    let mut depth = 0i64;
    let mut in_string = false;
    let mut last = ' ';
    for (i, ch) in input.char_indices() {
        if comments.iter().any(|c| (c.start..c.end).contains(&i)) {
            continue;
        }
        match ch {
            '"' => in_string = !in_string,
            '\n' => in_string = false,
            _ if in_string => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if !ch.is_whitespace() {
            last = ch;
        }
    }
    depth <= 0 && !matches!(last, '=' | ',' | '+' | '-' | '*' | '/' | '^' | '&' | '|')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    fn complete(helper: &ReplHelper, line: &str) -> (usize, Vec<String>) {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, found) = helper.complete(line, line.len(), &ctx).expect("completes");
        (start, found.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_commands_and_scene_names() {
        let helper = ReplHelper {
            names: Rc::new(RefCell::new(vec![
                "cloth".into(),
                "corner".into(),
                "stretch".into(),
            ])),
        };
        assert_eq!(complete(&helper, ":st"), (0, vec![":step".to_string()]));
        assert_eq!(complete(&helper, ":re").1, [":reload", ":reset"]);
        assert_eq!(
            complete(&helper, "norm(c"),
            (5, vec!["cloth".into(), "corner".into()])
        );
        assert_eq!(
            complete(&helper, ":set str"),
            (5, vec!["stretch".to_string()])
        );
    }

    #[test]
    fn open_brackets_and_trailing_operators_continue() {
        assert!(is_complete(":step 10"));
        assert!(is_complete("norm(a.x - b.x)"));
        assert!(!is_complete("energy e(p: particle) {"));
        assert!(!is_complete("const A = 1 +"));
        assert!(!is_complete("observe h ="));
        assert!(is_complete("const A = 1 // (open in a comment"));
        assert!(is_complete("scene \"a ( in a string\""));
        assert!(!is_complete("/* still open"));
    }
}
