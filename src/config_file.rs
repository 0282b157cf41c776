//! `pykv serve --config FILE`: every `serve` setting from a TOML file, under
//! the names of the flags without their dashes (`max-body-bytes = 1048576`),
//! and the quota file's sections under `[quotas]`.
//!
//! Precedence, highest first: a flag on the command line, its environment
//! variable, the file, the default. The file is turned into the flags it
//! stands for and handed to the same parser as the command line, so a
//! value means the same wherever it is written and is checked by the same
//! rules; a setting given by a flag or its variable leaves the file's out.
//!
//! An unknown key or a bad value stops the start, naming the file, the key
//! and what is allowed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches};

use crate::config::ServeArgs;

/// A configuration file, read and checked.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// `(key, the flag's arguments)` of each setting, in the file's order.
    settings: Vec<(String, Vec<OsString>)>,
    /// The `[quotas]` table: the quota file's sections.
    quotas: Option<toml::Table>,
}

/// One setting of an effective configuration: its key, where it came
/// from, and its values as given (none when unset).
pub type Setting = (String, Source, Vec<String>);

/// Where each setting of a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    File,
    Default,
}

impl ConfigFile {
    /// Reads `path`; every key and value is checked here.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the configuration file {}: {e}", path.display())
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "the configuration file {} is not valid TOML: {e}",
                path.display()
            )
        })?;
        let invalid = |key: &str, why: String| {
            anyhow::anyhow!(
                "the configuration file {}: key `{key}`: {why}",
                path.display()
            )
        };
        let command = serve_command();
        let mut settings = Vec::new();
        let mut quotas = None;
        for (key, value) in table {
            // `quotas = "FILE"` is the flag; a `[quotas]` table, the file's
            // sections in place.
            if let toml::Value::Table(table) = value.clone()
                && key == "quotas"
            {
                crate::quotas::check_quota_table(&table).map_err(|e| invalid(&key, e))?;
                quotas = Some(table);
                continue;
            }
            let arg = (command.get_arguments())
                .find(|arg| arg.get_long() == Some(key.as_str()) && key != "config")
                .ok_or_else(|| invalid(&key, format!("unknown; the keys are the flags of `pykv serve` without their dashes: {}", known_keys())))?;
            let flags =
                as_flags(&key, arg.get_action(), value).map_err(|why| invalid(&key, why))?;
            // Checked alone, by the same parser as the command line.
            ServeArgs::from_flags(&flags).map_err(|e| invalid(&key, summary(&e.to_string())))?;
            settings.push((key, flags));
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            settings,
            quotas,
        })
    }

    /// The configuration of `pykv serve` with `argv` (its arguments after
    /// `serve`) and this file beneath them, and where each setting came
    /// from.
    pub fn under(&self, argv: &[OsString]) -> anyhow::Result<(ServeArgs, Vec<Setting>)> {
        let given = parse(argv)?;
        let mut flags = Vec::new();
        let mut from_file = Vec::new();
        for (key, setting) in &self.settings {
            let id = id_of(key);
            let source = given.value_source(&id);
            if !matches!(
                source,
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                flags.extend(setting.iter().cloned());
                from_file.push(id);
            }
        }
        flags.extend(argv.iter().cloned());
        let matches = parse(&flags)?;
        let mut args = ServeArgs::from_arg_matches(&matches)?;
        if let Some(quotas) = &self.quotas {
            if args.limits.quotas.is_some() {
                anyhow::bail!(
                    "both --quotas and a [quotas] table in {}: keep one",
                    self.path.display()
                );
            }
            args.limits.inline_quotas = Some(quotas.clone());
        }
        args.config = Some(self.path.clone());
        Ok((args, sources(&matches, &from_file)))
    }
}

/// The configuration of `pykv serve ARGV...`, its `--config` file
/// included, and where each setting came from.
pub fn serve_config(argv: &[OsString]) -> anyhow::Result<(ServeArgs, Vec<Setting>)> {
    let matches = parse(argv)?;
    let args = ServeArgs::from_arg_matches(&matches)?;
    match &args.config {
        Some(path) => ConfigFile::load(path)?.under(argv),
        None => Ok((args, sources(&matches, &[]))),
    }
}

fn parse(argv: &[OsString]) -> Result<ArgMatches, clap::Error> {
    let command = std::iter::once(OsString::from("pykv serve")).chain(argv.iter().cloned());
    serve_command().try_get_matches_from(command)
}

/// `pykv serve`'s flags as a command of their own.
fn serve_command() -> clap::Command {
    ServeArgs::augment_args(clap::Command::new("pykv serve"))
}

/// The arguments a file's `value` stands for, for a flag of this kind.
fn as_flags(key: &str, action: &ArgAction, value: toml::Value) -> Result<Vec<OsString>, String> {
    let flag = OsString::from(format!("--{key}"));
    if matches!(action, ArgAction::SetTrue) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![flag]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!("must be true or false, got {}", other.type_str())),
        };
    }
    let values = match value {
        toml::Value::Array(values) if matches!(action, ArgAction::Append) => values,
        toml::Value::Array(_) => return Err("takes one value, not a list".into()),
        one => vec![one],
    };
    let mut flags = Vec::new();
    for value in values {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "must be a string or a number, got {}",
                    other.type_str()
                ));
            }
        };
        flags.push(flag.clone());
        flags.push(text.into());
    }
    Ok(flags)
}

/// Each setting of `matches`, where it came from and its values;
/// `from_file` holds the ids the file supplied.
fn sources(matches: &ArgMatches, from_file: &[String]) -> Vec<Setting> {
    let command = serve_command();
    (command.get_arguments())
        .filter_map(|arg| {
            let key = arg.get_long().filter(|key| *key != "config")?;
            let id = arg.get_id().as_str();
            let source = if from_file.iter().any(|f| f == id) {
                Source::File
            } else {
                match matches.value_source(id) {
                    Some(ValueSource::CommandLine) => Source::Flag,
                    Some(ValueSource::EnvVariable) => Source::Environment,
                    _ => Source::Default,
                }
            };
            let values = (matches.get_raw(id).into_iter().flatten())
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            Some((key.to_owned(), source, values))
        })
        .collect()
}

/// The effective configuration as a TOML file, each setting with where it
/// came from; passwords in URLs masked.
pub fn render(settings: &[Setting]) -> String {
    let mut out = String::from(
        "# The effective configuration of `pykv serve`: a flag wins over its \
         environment variable,\n# which wins over the file, which wins over the default.\n",
    );
    for (key, source, values) in settings {
        let source = match source {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::File => "file",
            Source::Default => "default",
        };
        let shown: Vec<toml::Value> = values.iter().map(|v| typed(&mask(v))).collect();
        let line = match shown.as_slice() {
            [] => format!("# {key} is unset"),
            [one] => format!("{key} = {one}"),
            many => format!("{key} = {}", toml::Value::Array(many.to_vec())),
        };
        out.push_str(&format!("{line:<48} # {source}\n"));
    }
    out
}

/// A value as TOML writes it: a number or a boolean when it reads as one.
fn typed(value: &str) -> toml::Value {
    if let Ok(n) = value.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

/// A URL's password replaced by `****` (`redis://user:secret@host`).
fn mask(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:****@{host}")
        }
        _ => value.to_owned(),
    }
}

/// The arguments after the words of a subcommand (`["serve"]`,
/// `["config", "print"]`) on this process's command line.
pub fn arguments_after(words: &[&str]) -> Vec<OsString> {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut at = 0;
    for word in words {
        match argv[at..].iter().position(|a| a == word) {
            Some(i) => at += i + 1,
            None => return Vec::new(),
        }
    }
    argv[at..].to_vec()
}

/// The argument id of a flag's long name.
fn id_of(key: &str) -> String {
    let command = serve_command();
    (command.get_arguments())
        .find(|arg| arg.get_long() == Some(key))
        .map(|arg| arg.get_id().as_str().to_owned())
        .unwrap_or_default()
}

fn known_keys() -> String {
    let command = serve_command();
    let keys: Vec<_> = (command.get_arguments())
        .filter_map(|arg| arg.get_long())
        .filter(|key| *key != "config")
        .chain(["quotas (a table)"])
        .collect();
    keys.join(", ")
}

/// clap's message without its usage lines: what was wrong, and the values
/// allowed when it lists them.
fn summary(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty());
    let first = lines
        .next()
        .unwrap_or(message)
        .trim_start_matches("error: ");
    match lines.find(|line| line.contains("possible values")) {
        Some(allowed) => format!("{first} {allowed}"),
        None => first.to_owned(),
    }
}
