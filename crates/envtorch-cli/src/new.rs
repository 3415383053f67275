//! `envtorch new <name>`: creates an environment crate from the template and registers its
//! image in the flake.
//!
//! For `envtorch new maze` it writes `crates/envs/maze` (package and binary `maze-env`, env
//! name `maze`, types `MazeAction`, `MazeObservation`, `MazeState`, `MazeEnv`): a working echo
//! environment with unit tests. The workspace picks the crate up through its `crates/envs/*`
//! member glob (checked here, so a workspace without it fails before anything is written),
//! and the image gets one entry appended to the list in `nix/envs.nix`, which the flake
//! turns into the package, the image, `nix run .#maze-env` and the image checks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::Args;

/// The crate's `Cargo.toml`.
const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.tmpl");
/// The crate's `src/main.rs`: the echo environment and its tests.
const MAIN_RS: &str = include_str!("../templates/main.rs.tmpl");
/// The crate's `README.md`.
const README_MD: &str = include_str!("../templates/README.md.tmpl");
/// The entry appended to the image list.
const NIX_ENTRY: &str = include_str!("../templates/envs.nix.entry.tmpl");

/// Where environment crates live, relative to the workspace root.
const ENVS_DIR: &str = "crates/envs";
/// The flake's list of environment images, relative to the workspace root.
const NIX_ENVS: &str = "nix/envs.nix";
/// Longest accepted name: it becomes a directory, a crate, a binary and an image name.
const MAX_NAME_LEN: usize = 32;

/// Arguments of `envtorch new`.
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The environment's name: lowercase letters, digits and single hyphens, starting with a
    /// letter (e.g. `maze`, `tic-tac-toe`). The crate is `<name>-env`, in `crates/envs/<name>`.
    name: String,
    /// One line saying what the environment is (the crate description, `/metadata`, the
    /// image label).
    #[arg(long)]
    description: Option<String>,
    /// The workspace root (default: the nearest directory above the current one whose
    /// Cargo.toml has a `[workspace]`).
    #[arg(long)]
    workspace: Option<PathBuf>,
}

/// Why `envtorch new` refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NewError {
    /// The name cannot become a crate, binary and image name.
    #[error("invalid environment name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The description would not fit on one line of TOML, Rust and Nix.
    #[error("invalid description: {0}")]
    InvalidDescription(&'static str),
    /// No workspace was found.
    #[error("no Cargo workspace found in {0} or above it (pass --workspace)")]
    NoWorkspace(PathBuf),
    /// The workspace's members do not cover the new crate, so it would not build there.
    #[error(
        "{dir} is not covered by [workspace] members in {manifest}; add \"{ENVS_DIR}/*\" there"
    )]
    NotAMember { dir: String, manifest: PathBuf },
    /// The crate directory exists already.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The image list has an entry with that name already.
    #[error("{path} already has an image named {image:?}")]
    ImageListed { path: PathBuf, image: String },
    /// The image list is not the expected `[ { ... } ... ]` list.
    #[error("{0}: no line with the closing `]` of the environment list")]
    ImageListFormat(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The workspace Cargo.toml is not valid TOML.
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> NewError + '_ {
    move |source| NewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The names one environment name turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvNames {
    /// As given: `tic-tac-toe`.
    pub(crate) name: String,
    /// Package, binary and image: `tic-tac-toe-env`.
    pub(crate) package: String,
    /// In URLs and `/metadata`: `tic_tac_toe`.
    pub(crate) env_name: String,
    /// Rust type names start with it: `TicTacToe`.
    pub(crate) type_prefix: String,
    /// The crate directory relative to the workspace root: `crates/envs/tic-tac-toe`.
    pub(crate) dir: String,
}

impl EnvNames {
    /// Checks `name` and derives the other names from it.
    pub(crate) fn new(name: &str) -> Result<Self, NewError> {
        let invalid = |reason: &str| NewError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(invalid(&format!("use 1 to {MAX_NAME_LEN} characters")));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid("use lowercase letters, digits and hyphens only"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid("start with a letter"));
        }
        if name.ends_with('-') || name.contains("--") {
            return Err(invalid("use single hyphens between words"));
        }
        if name == "env" || name.ends_with("-env") {
            return Err(invalid(
                "leave out the `-env` suffix: the crate is named `<name>-env` already",
            ));
        }
        let type_prefix = name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            package: format!("{name}-env"),
            env_name: name.replace('-', "_"),
            type_prefix,
            dir: format!("{ENVS_DIR}/{name}"),
        })
    }
}

/// What `create` did.
#[derive(Debug)]
pub(crate) struct Created {
    /// The names of the new environment.
    pub(crate) names: EnvNames,
    /// The new crate's directory.
    pub(crate) crate_dir: PathBuf,
    /// The image list that got an entry, if the workspace has one.
    pub(crate) image_list: Option<PathBuf>,
}

/// Runs `envtorch new` and tells the user what happened and what to do next.
pub(crate) fn run(args: &NewArgs) -> Result<(), NewError> {
    let root = match &args.workspace {
        Some(root) => root.clone(),
        None => {
            let cwd = std::env::current_dir().map_err(io_error(Path::new(".")))?;
            find_workspace_root(&cwd)?
        }
    };
    let description = args.description.clone();
    let created = create(&root, &args.name, description.as_deref())?;
    let EnvNames { package, dir, .. } = &created.names;
    println!(
        "created {} (package and binary {package})",
        created.crate_dir.display()
    );
    match &created.image_list {
        Some(list) => println!("added the image {package} to {}", list.display()),
        None => println!(
            "no {NIX_ENVS} in this workspace: no image entry was added (see docs/writing-an-environment.md)"
        ),
    }
    println!();
    println!("next:");
    println!("  cargo test -p {package}");
    println!("  cargo build -p {package} -p envtorch-server");
    println!("  PORT=8000 target/debug/envtorch-server --env target/debug/{package}");
    println!("  nix build .#{package}    # the container image ({package}:latest)");
    println!("  commit {dir}, {NIX_ENVS} and Cargo.lock");
    Ok(())
}

/// Creates the crate for `name` in the workspace at `root` and appends its image to
/// `nix/envs.nix` (when the workspace has that file). Everything is checked before anything
/// is written.
pub(crate) fn create(
    root: &Path,
    name: &str,
    description: Option<&str>,
) -> Result<Created, NewError> {
    let names = EnvNames::new(name)?;
    let description = match description {
        Some(d) => d.trim().to_owned(),
        None => format!("The {} environment.", names.env_name),
    };
    check_description(&description)?;

    let manifest = root.join("Cargo.toml");
    check_member(&manifest, &names.dir)?;
    let crate_dir = root.join(&names.dir);
    if crate_dir.exists() {
        return Err(NewError::Exists(crate_dir));
    }
    let image_list = root.join(NIX_ENVS);
    let nix_update = if image_list.is_file() {
        let text = fs::read_to_string(&image_list).map_err(io_error(&image_list))?;
        Some(with_image_entry(&image_list, &text, &names, &description)?)
    } else {
        None
    };

    let src = crate_dir.join("src");
    fs::create_dir_all(root.join(ENVS_DIR)).map_err(io_error(&crate_dir))?;
    fs::create_dir(&crate_dir).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => NewError::Exists(crate_dir.clone()),
        _ => io_error(&crate_dir)(e),
    })?;
    fs::create_dir(&src).map_err(io_error(&src))?;
    for (path, template) in [
        (crate_dir.join("Cargo.toml"), CARGO_TOML),
        (crate_dir.join("README.md"), README_MD),
        (src.join("main.rs"), MAIN_RS),
    ] {
        let text = render(template, &names, &description);
        fs::write(&path, text).map_err(io_error(&path))?;
    }
    if let Some(text) = &nix_update {
        fs::write(&image_list, text).map_err(io_error(&image_list))?;
    }
    Ok(Created {
        names,
        crate_dir,
        image_list: nix_update.map(|_| image_list),
    })
}

/// The description goes into TOML, Rust and Nix strings and a doc comment: one printable
/// line keeps every one of them simple and valid.
fn check_description(description: &str) -> Result<(), NewError> {
    if description.is_empty() {
        return Err(NewError::InvalidDescription("it is empty"));
    }
    if description.chars().any(char::is_control) {
        return Err(NewError::InvalidDescription(
            "use one line without control characters",
        ));
    }
    Ok(())
}

/// Fills a template's `{{placeholders}}`.
pub(crate) fn render(template: &str, names: &EnvNames, description: &str) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let replacements = [
        ("{{name}}", names.name.clone()),
        ("{{package}}", names.package.clone()),
        ("{{env_name}}", names.env_name.clone()),
        ("{{type_prefix}}", names.type_prefix.clone()),
        ("{{dir}}", names.dir.clone()),
        ("{{description}}", description.to_owned()),
        ("{{description_doc}}", description.to_owned()),
        (
            "{{description_toml}}",
            format!("\"{}\"", escape(description)),
        ),
        ("{{description_rust}}", format!("{description:?}")),
        (
            "{{description_nix}}",
            format!("\"{}\"", escape(description).replace("${", "\\${")),
        ),
    ];
    replacements
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(key, value)
        })
}

/// `nix/envs.nix` with the new image's entry inserted before the list's closing `]`.
fn with_image_entry(
    path: &Path,
    text: &str,
    names: &EnvNames,
    description: &str,
) -> Result<String, NewError> {
    if text.contains(&format!("name = \"{}\";", names.package)) {
        return Err(NewError::ImageListed {
            path: path.to_owned(),
            image: names.package.clone(),
        });
    }
    let lines: Vec<&str> = text.lines().collect();
    let close = lines
        .iter()
        .rposition(|line| line.trim_end() == "]")
        .ok_or_else(|| NewError::ImageListFormat(path.to_owned()))?;
    let mut out = String::with_capacity(text.len() + NIX_ENTRY.len());
    for line in &lines[..close] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&render(NIX_ENTRY, names, description));
    for line in &lines[close..] {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// The nearest directory at or above `start` whose Cargo.toml declares a `[workspace]`.
pub(crate) fn find_workspace_root(start: &Path) -> Result<PathBuf, NewError> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file() && read_toml(&manifest)?.contains_key("workspace") {
            return Ok(dir.to_owned());
        }
    }
    Err(NewError::NoWorkspace(start.to_owned()))
}

fn read_toml(path: &Path) -> Result<toml::Table, NewError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    text.parse::<toml::Table>()
        .map_err(|source| NewError::Toml {
            path: path.to_owned(),
            source,
        })
}

/// Fails unless `dir` matches one of the workspace's `members` globs and none of its
/// `exclude` entries: the new crate must build as a member without editing Cargo.toml.
fn check_member(manifest: &Path, dir: &str) -> Result<(), NewError> {
    let table = read_toml(manifest)?;
    let strings = |key: &str| -> Vec<String> {
        table
            .get("workspace")
            .and_then(|w| w.get(key))
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(toml::Value::as_str)
                    .map(|s| s.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let covered = strings("members").iter().any(|m| path_glob_matches(m, dir));
    let excluded = strings("exclude").iter().any(|e| e == dir);
    if covered && !excluded {
        Ok(())
    } else {
        Err(NewError::NotAMember {
            dir: dir.to_owned(),
            manifest: manifest.to_owned(),
        })
    }
}

/// Whether a Cargo member glob (`*` and `?` within a path segment) matches `path`.
fn path_glob_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) =
        (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| segment_matches(p.as_bytes(), s.as_bytes()))
}

fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            segment_matches(rest, text)
                || (!text.is_empty() && segment_matches(pattern, &text[1..]))
        }
        (Some((b'?', rest)), Some((_, text_rest))) => segment_matches(rest, text_rest),
        (Some((p, rest)), Some((t, text_rest))) => p == t && segment_matches(rest, text_rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(members: &str, with_nix: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("Cargo.toml"),
            format!("[workspace]\nmembers = {members}\n"),
        )
        .unwrap();
        if with_nix {
            fs::create_dir(dir.path().join("nix")).unwrap();
            fs::write(
                dir.path().join(NIX_ENVS),
                "# The list.\n[\n  {\n    name = \"echo-env\";\n    dir = \"crates/envs/echo\";\n  }\n]\n",
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn names_derive_from_the_given_one() {
        let names = EnvNames::new("tic-tac-toe").unwrap();
        assert_eq!(names.package, "tic-tac-toe-env");
        assert_eq!(names.env_name, "tic_tac_toe");
        assert_eq!(names.type_prefix, "TicTacToe");
        assert_eq!(names.dir, "crates/envs/tic-tac-toe");
        assert_eq!(EnvNames::new("game2048").unwrap().type_prefix, "Game2048");
        assert_eq!(EnvNames::new("x-2").unwrap().type_prefix, "X2");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "Maze",
            "maze_1",
            "1maze",
            "-maze",
            "maze-",
            "a--b",
            "maze-env",
            "env",
            "ma ze",
            "é",
            &"m".repeat(33),
        ] {
            assert!(
                matches!(EnvNames::new(bad), Err(NewError::InvalidName { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn member_globs_match_like_cargo() {
        assert!(path_glob_matches("crates/envs/*", "crates/envs/maze"));
        assert!(path_glob_matches("crates/*/maze", "crates/envs/maze"));
        assert!(path_glob_matches("crates/envs/ma?e", "crates/envs/maze"));
        assert!(!path_glob_matches("crates/envtorch-*", "crates/envs/maze"));
        assert!(!path_glob_matches("crates/*", "crates/envs/maze"));
        assert!(path_glob_matches("crates/envs/maze", "crates/envs/maze"));
    }

    #[test]
    fn creates_the_crate_and_appends_the_image() {
        let ws = workspace(r#"["crates/envtorch-*", "crates/envs/*"]"#, true);
        let created = create(ws.path(), "maze", Some(r#"A "maze" with ${x} \ paths"#)).unwrap();
        assert_eq!(created.crate_dir, ws.path().join("crates/envs/maze"));
        for file in ["Cargo.toml", "README.md", "src/main.rs"] {
            let text = fs::read_to_string(created.crate_dir.join(file)).unwrap();
            assert!(
                !text.contains("{{"),
                "{file} has a placeholder left: {text}"
            );
        }
        let cargo = fs::read_to_string(created.crate_dir.join("Cargo.toml")).unwrap();
        let parsed: toml::Table = cargo.parse().unwrap();
        assert_eq!(parsed["package"]["name"].as_str(), Some("maze-env"));
        assert_eq!(
            parsed["package"]["description"].as_str(),
            Some(r#"A "maze" with ${x} \ paths"#)
        );
        let main = fs::read_to_string(created.crate_dir.join("src/main.rs")).unwrap();
        assert!(main.contains("struct MazeAction"));
        assert!(main.contains(r#"Manifest::new("maze", DESCRIPTION)"#));
        assert!(main.contains(r#"const DESCRIPTION: &str = "A \"maze\" with ${x} \\ paths";"#));

        let nix = fs::read_to_string(ws.path().join(NIX_ENVS)).unwrap();
        assert!(nix.starts_with("# The list.\n[\n  {\n    name = \"echo-env\";"));
        assert!(nix.ends_with(
            "  {\n    name = \"maze-env\";\n    dir = \"crates/envs/maze\";\n    description = \"A \\\"maze\\\" with \\${x} \\\\ paths\";\n    runtime = null;\n    budgetMiB = 16;\n  }\n]\n"
        ), "{nix}");
        assert_eq!(created.image_list, Some(ws.path().join(NIX_ENVS)));
    }

    #[test]
    fn refuses_before_writing_anything() {
        let ws = workspace(r#"["crates/envtorch-*", "crates/envs/*"]"#, true);
        create(ws.path(), "maze", None).unwrap();
        assert!(matches!(
            create(ws.path(), "maze", None),
            Err(NewError::Exists(_))
        ));

        // Listed in nix but no crate yet: nothing is written.
        let nix_before = fs::read_to_string(ws.path().join(NIX_ENVS)).unwrap();
        fs::write(
            ws.path().join(NIX_ENVS),
            nix_before.replace("echo-env", "cave-env"),
        )
        .unwrap();
        assert!(matches!(
            create(ws.path(), "cave", None),
            Err(NewError::ImageListed { .. })
        ));
        assert!(!ws.path().join("crates/envs/cave").exists());

        let narrow = workspace(r#"["crates/envtorch-*"]"#, false);
        assert!(matches!(
            create(narrow.path(), "maze", None),
            Err(NewError::NotAMember { .. })
        ));
        assert!(!narrow.path().join("crates/envs/maze").exists());

        assert!(matches!(
            create(ws.path(), "lake", Some("two\nlines")),
            Err(NewError::InvalidDescription(_))
        ));
    }

    #[test]
    fn works_without_an_image_list() {
        let ws = workspace(r#"["crates/envs/*"]"#, false);
        let created = create(ws.path(), "maze", None).unwrap();
        assert_eq!(created.image_list, None);
        assert!(created.crate_dir.join("src/main.rs").is_file());
    }

    #[test]
    fn finds_the_workspace_root_from_below() {
        let ws = workspace(r#"["crates/envs/*"]"#, false);
        let below = ws.path().join("crates/envs");
        fs::create_dir_all(&below).unwrap();
        fs::write(below.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(find_workspace_root(&below).unwrap(), ws.path());
    }
}
