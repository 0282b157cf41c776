//! Where the shell's lines come from: a terminal, with line editing and
//! history (rustyline), or anything else (a pipe, a file) read line by line
//! without prompts, so that scripted output holds only answers.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

/// History file in the user's home directory.
const HISTORY_FILE: &str = ".pykv_history";

/// A source of lines.
pub trait Input {
    /// The next command line without its line ending, showing `prompt` if
    /// interactive; `None` at the end of input.
    fn read_line(&mut self, prompt: &str) -> Option<String>;

    /// Asks `question` and reads the answer from the next line: yes only
    /// for `y` or `yes` (the end of input is a no).
    fn confirm(&mut self, question: &str) -> bool {
        is_yes(self.read_line(question))
    }
}

fn is_yes(answer: Option<String>) -> bool {
    let answer = answer.unwrap_or_default().trim().to_ascii_lowercase();
    answer == "y" || answer == "yes"
}

/// The terminal if stdin is one (and rustyline can drive it), else stdin
/// read as plain lines.
pub fn stdin() -> Box<dyn Input> {
    if std::io::stdin().is_terminal()
        && let Some(terminal) = Terminal::open()
    {
        return Box::new(terminal);
    }
    Box::new(Lines(std::io::stdin().lock()))
}

/// An interactive terminal; saves its history when dropped.
pub struct Terminal {
    editor: DefaultEditor,
    history: Option<PathBuf>,
}

impl Terminal {
    fn open() -> Option<Terminal> {
        let mut editor = DefaultEditor::new().ok()?;
        let history = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|home| home.is_dir())
            .map(|home| home.join(HISTORY_FILE));
        if let Some(path) = &history {
            // A missing file is the first session; nothing to say.
            let _ = editor.load_history(path);
        }
        Some(Terminal { editor, history })
    }
}

impl Terminal {
    /// One line; `remember` adds it to the history (commands are, answers
    /// to confirmations are not).
    fn read(&mut self, prompt: &str, remember: bool) -> Option<String> {
        match self.editor.readline(prompt) {
            Ok(line) => {
                if remember && !line.trim().is_empty() {
                    let _ = self.editor.add_history_entry(line.as_str());
                }
                Some(line)
            }
            // Ctrl-C drops the line being typed (and answers "no" to a
            // confirmation); Ctrl-D ends the session.
            Err(ReadlineError::Interrupted) => Some(String::new()),
            Err(ReadlineError::Eof) => None,
            Err(e) => {
                eprintln!("error: reading the terminal: {e}");
                None
            }
        }
    }
}

impl Input for Terminal {
    fn read_line(&mut self, prompt: &str) -> Option<String> {
        self.read(prompt, true)
    }

    fn confirm(&mut self, question: &str) -> bool {
        is_yes(self.read(question, false))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(path) = &self.history
            && let Err(e) = self.editor.save_history(path)
        {
            eprintln!("warning: cannot save history to {}: {e}", path.display());
        }
    }
}

/// Plain lines from any reader; `\r\n` endings are accepted.
pub struct Lines<R>(pub R);

impl<R: BufRead> Input for Lines<R> {
    fn read_line(&mut self, _prompt: &str) -> Option<String> {
        let mut line = String::new();
        match self.0.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                None
            }
        }
    }
}
