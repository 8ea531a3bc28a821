//! `joule repl [SCENE]`: an interactive session on a scene. On a terminal it
//! edits lines with rustyline (history in `~/.joule_history`, tab completion,
//! multi-line input); with a script on standard input it reads the same
//! commands line by line and exits 1 if any of them failed.

mod helper;
mod session;

use crate::args::ThreadsArg;
use helper::{is_complete, ReplHelper};
use rustyline::error::ReadlineError;
use session::{Flow, Session};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// An interactive session: step, inspect, evaluate expressions, add items, differentiate.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  joule repl scenes/hanging_cloth.joule\n  joule repl scenes/pendulum.joule < session.txt   # a script: exit 1 if a command fails\n\nInside: `:help`, `:step 10`, `norm(cloth[0, 0].x - cloth[1, 0].x)`, `:grad sag 60`."
)]
pub struct ReplArgs {
    /// The scene to start with (default: an empty scene).
    scene: Option<PathBuf>,
    #[command(flatten)]
    threads: ThreadsArg,
}

/// Runs the REPL until `:quit` or end of input.
pub fn repl(a: ReplArgs) -> ExitCode {
    if let Err(e) = a.threads.apply() {
        eprintln!("{e:?}");
        return ExitCode::FAILURE;
    }
    let scene = a.scene.as_deref();
    let interactive = std::io::stdin().is_terminal();
    let color = interactive && std::io::stdout().is_terminal();
    let mut session = match Session::new(scene, color) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if interactive {
        interactive_loop(&mut session)
    } else {
        script_loop(&mut session)
    }
}

fn interactive_loop(session: &mut Session) -> ExitCode {
    let names = helper::Names::default();
    *names.borrow_mut() = session.names();
    let mut editor = match rustyline::Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    editor.set_helper(Some(ReplHelper {
        names: names.clone(),
    }));
    let history = std::env::var_os("HOME").map(|h| Path::new(&h).join(".joule_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("joule repl — `:help` for commands, Ctrl-D to leave");
    loop {
        match editor.readline("joule> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                let (flow, reply) = session.handle(&line);
                match reply {
                    Ok(s) => print!("{s}"),
                    Err(s) => print!("{s}"),
                }
                *names.borrow_mut() = session.names();
                if flow == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    ExitCode::SUCCESS
}

fn script_loop(session: &mut Session) -> ExitCode {
    let mut failed = false;
    let mut pending = String::new();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            eprintln!("error: standard input is not UTF-8 text");
            return ExitCode::FAILURE;
        };
        pending.push_str(&line);
        pending.push('\n');
        if !is_complete(&pending) {
            continue;
        }
        let (flow, reply) = session.handle(&pending);
        pending.clear();
        let mut out = stdout.lock();
        let _ = match reply {
            Ok(s) => write!(out, "{s}"),
            Err(s) => {
                failed = true;
                write!(out, "{s}")
            }
        };
        let _ = out.flush();
        if flow == Flow::Quit {
            break;
        }
    }
    if !pending.trim().is_empty() {
        println!("error: the input ended inside an unfinished item or expression");
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
