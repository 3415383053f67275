//! Builds the project's container images locally, without Nix and without pulling anything:
//! `FROM scratch` contexts assembled in memory as tar archives and sent to the daemon's build
//! API (legacy builder), from the project's static binaries.
//!
//! The layout (paths, entrypoint, user, environment, healthcheck, labels) is read from
//! `nix/image-layout.json`, the same file `nix/images.nix` reads, so these images and the Nix
//! images cannot drift apart:
//!
//! * [`BASE_TAG`] (`envtorch-base:test`): the server at `serverPath`, `/etc/passwd` and
//!   `/etc/group` with the unprivileged user, a CA bundle at `env.SSL_CERT_FILE`, and the
//!   `writableDirs` with mode 1777. `Entrypoint = [serverPath]`.
//! * [`ECHO_TAG`] (`echo-env:test`) and [`CODING_TAG`] (`coding-env:test`): `FROM` the base,
//!   adding `envBinDir/<binary>` (so their layers begin with the base's), entrypoint
//!   `[serverPath] + envCommand`.
//! * The coding image also gets a minimal CPython: this machine's interpreter prefix (by
//!   default `sys.base_prefix` of `python3`) copied to [`PYTHON_PREFIX`] without tests, IDLE,
//!   Tk, ensurepip and third-party packages; `pythonPath` (`/usr/bin/python3`) links to it,
//!   and the shared libraries the interpreter and its extension modules link (found with
//!   `ldd`) are copied to the paths they have here. The Nix image uses `python3Minimal`
//!   instead; both put `python3` at `pythonPath`, which is all the coding env needs (it finds
//!   `python3` on `PATH` and asks it for its real prefix).
//!
//! Builds are idempotent: each image is labelled with a digest of its context
//! ([`CONTEXT_LABEL`]) and skipped when the tagged image already has that digest. A rebuild
//! removes the image it replaces, so repeated runs leave no dangling images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::DockerError;

/// Tag of the base image built here.
pub const BASE_TAG: &str = "envtorch-base:test";
/// Tag of the echo environment image.
pub const ECHO_TAG: &str = "echo-env:test";
/// Tag of the coding environment image.
pub const CODING_TAG: &str = "coding-env:test";
/// Label holding the digest of an image's build context (for skipping unchanged rebuilds).
pub const CONTEXT_LABEL: &str = "io.envtorch.test-image.context";
/// Label marking images built by this module.
pub const TEST_IMAGE_LABEL: &str = "io.envtorch.test-image";
/// Where the coding image's Python prefix lives.
pub const PYTHON_PREFIX: &str = "/opt/python3";

/// `nix/image-layout.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// The unprivileged user the images run as.
    pub user: LayoutUser,
    /// The port the server listens on.
    pub port: u16,
    /// Where the server binary goes.
    pub server_path: String,
    /// Where environment binaries go.
    pub env_bin_dir: String,
    /// The working directory.
    pub work_dir: String,
    /// The image environment.
    pub env: BTreeMap<String, String>,
    /// The Docker HEALTHCHECK.
    pub healthcheck: LayoutHealthcheck,
    /// OCI labels common to all images.
    pub labels: BTreeMap<String, String>,
    /// Arguments after the server path in an env image's entrypoint; `{binary}` is replaced.
    pub env_command: Vec<String>,
    /// Directories created world-writable (sticky).
    pub writable_dirs: Vec<String>,
    /// Where `python3` is, in images that carry Python.
    pub python_path: String,
}

/// The image user.
#[derive(Debug, Clone, Deserialize)]
pub struct LayoutUser {
    /// User name.
    pub name: String,
    /// Numeric uid (never 0).
    pub uid: u32,
    /// Numeric gid (never 0).
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell (a non-shell).
    pub shell: String,
}

/// The HEALTHCHECK.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutHealthcheck {
    /// Exec form: `["CMD", serverPath, "health"]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_seconds: u64,
    /// Seconds one check may take.
    pub timeout_seconds: u64,
    /// Grace period after start.
    pub start_period_seconds: u64,
    /// Failures before `unhealthy`.
    pub retries: u64,
}

impl Layout {
    /// Parses the layout JSON.
    pub fn from_json(text: &str) -> Result<Self, DockerError> {
        serde_json::from_str(text).map_err(|e| DockerError::Build {
            image: "(layout)".into(),
            message: format!("nix/image-layout.json: {e}"),
        })
    }

    /// Reads the layout from a file.
    pub fn load(path: &Path) -> Result<Self, DockerError> {
        let text = std::fs::read_to_string(path).map_err(|e| DockerError::Build {
            image: "(layout)".into(),
            message: format!("{}: {e}", path.display()),
        })?;
        Self::from_json(&text)
    }

    /// `USER` value: numeric, so no passwd lookup is needed at run time.
    pub fn user_spec(&self) -> String {
        format!("{}:{}", self.user.uid, self.user.gid)
    }

    /// The entrypoint of an environment image for `binary`.
    pub fn env_entrypoint(&self, binary: &str) -> Vec<String> {
        std::iter::once(self.server_path.clone())
            .chain(
                self.env_command
                    .iter()
                    .map(|a| a.replace("{binary}", binary)),
            )
            .collect()
    }

    /// Instructions every image repeats (so each has the complete config, as the Nix ones).
    fn common_instructions(&self, title: &str, description: &str) -> String {
        let hc = &self.healthcheck;
        let mut out = String::new();
        out.push_str(&format!("USER {}\n", self.user_spec()));
        out.push_str(&format!("WORKDIR {}\n", self.work_dir));
        out.push_str(&format!("EXPOSE {}/tcp\n", self.port));
        let test = hc.test.get(1..).unwrap_or_default();
        out.push_str(&format!(
            "HEALTHCHECK --interval={}s --timeout={}s --start-period={}s --retries={} CMD {}\n",
            hc.interval_seconds,
            hc.timeout_seconds,
            hc.start_period_seconds,
            hc.retries,
            json_array(test)
        ));
        let mut labels = self.labels.clone();
        labels.insert("org.opencontainers.image.title".into(), title.into());
        labels.insert(
            "org.opencontainers.image.description".into(),
            description.into(),
        );
        labels.insert(
            "org.opencontainers.image.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        );
        labels.insert(TEST_IMAGE_LABEL.into(), "true".into());
        for (k, v) in labels {
            out.push_str(&format!("LABEL {}={}\n", json_string(&k), json_string(&v)));
        }
        out
    }
}

/// Where the inputs of a build come from.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The layout.
    pub layout: Layout,
    /// Directory holding the static `envtorch-server`, `echo-env` and `coding-env`.
    pub bin_dir: PathBuf,
    /// The Python prefix to copy into the coding image.
    pub python_prefix: PathBuf,
    /// A CA bundle to install at `env.SSL_CERT_FILE`.
    pub ca_bundle: PathBuf,
}

impl BuildInputs {
    /// The defaults for a checkout at `repo_root`: `nix/image-layout.json`;
    /// `$ENVTORCH_STATIC_DIR` or `target/<arch>-unknown-linux-gnu/release` (what
    /// `RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target
    /// <arch>-unknown-linux-gnu` produces); `$ENVTORCH_TEST_PYTHON_PREFIX` or the
    /// `sys.base_prefix` of `python3`; the system CA bundle.
    pub fn from_repo(repo_root: &Path) -> Result<Self, DockerError> {
        let layout = Layout::load(&repo_root.join("nix/image-layout.json"))?;
        let bin_dir = std::env::var_os("ENVTORCH_STATIC_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                repo_root.join(format!(
                    "target/{}-unknown-linux-gnu/release",
                    std::env::consts::ARCH
                ))
            });
        let python_prefix = match std::env::var_os("ENVTORCH_TEST_PYTHON_PREFIX") {
            Some(p) => PathBuf::from(p),
            None => host_python_prefix()?,
        };
        let ca_bundle = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/ca-bundle.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        Ok(Self {
            layout,
            bin_dir,
            python_prefix,
            ca_bundle,
        })
    }

    fn binary(&self, name: &str, image: &str) -> Result<PathBuf, DockerError> {
        let path = self.bin_dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| DockerError::Build {
            image: image.into(),
            message: format!(
                "{}: {e}; build the static binaries first: scripts/build-test-images.sh (or RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target {}-unknown-linux-gnu -p envtorch-server -p echo-env -p coding-env)",
                path.display(),
                std::env::consts::ARCH
            ),
        })?;
        if !is_static_elf(&bytes) {
            return Err(DockerError::Build {
                image: image.into(),
                message: format!(
                    "{} is not a static ELF executable (it has a program interpreter); a FROM scratch image cannot run it. Build with RUSTFLAGS='-C target-feature=+crt-static'",
                    path.display()
                ),
            });
        }
        Ok(path)
    }
}

/// The images [`build_all`] made: tag → image id.
#[derive(Debug, Clone, Default)]
pub struct BuiltImages {
    /// Image ids by tag.
    pub ids: BTreeMap<String, String>,
    /// Tags that were (re)built rather than found up to date.
    pub rebuilt: Vec<String>,
}

/// Builds (or finds up to date) the base, echo and coding images.
pub async fn build_all(docker: &Docker, inputs: &BuildInputs) -> Result<BuiltImages, DockerError> {
    let mut built = BuiltImages::default();
    let mut replaced = Vec::new();
    build_base(docker, inputs, &mut built, &mut replaced).await?;
    build_env(
        docker,
        inputs,
        ECHO_TAG,
        "echo-env",
        false,
        &mut built,
        &mut replaced,
    )
    .await?;
    build_env(
        docker,
        inputs,
        CODING_TAG,
        "coding-env",
        true,
        &mut built,
        &mut replaced,
    )
    .await?;
    // Env images first: an old base cannot go while an old env image still uses it.
    for id in replaced.iter().rev() {
        remove_if_unused(docker, id).await;
    }
    Ok(built)
}

/// Removes the images built here (by tag), e.g. to clean a CI machine.
pub async fn remove_all(docker: &Docker) -> Result<(), DockerError> {
    for tag in [CODING_TAG, ECHO_TAG, BASE_TAG] {
        match docker
            .remove_image(
                tag,
                Some(RemoveImageOptionsBuilder::default().force(true).build()),
                None,
            )
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(DockerError::api("remove image", e)),
        }
    }
    Ok(())
}

async fn build_base(
    docker: &Docker,
    inputs: &BuildInputs,
    built: &mut BuiltImages,
    replaced: &mut Vec<String>,
) -> Result<(), DockerError> {
    let l = &inputs.layout;
    let server = inputs.binary("envtorch-server", BASE_TAG)?;
    let mut ctx = Context::default();
    ctx.file(
        &format!("rootfs{}", l.server_path),
        &server,
        0o755,
        BASE_TAG,
    )?;
    ctx.bytes(
        "rootfs/etc/passwd",
        format!(
            "{}:x:{}:{}:{}:{}:{}\n",
            l.user.name, l.user.uid, l.user.gid, l.user.name, l.user.home, l.user.shell
        )
        .into_bytes(),
        0o644,
    );
    ctx.bytes(
        "rootfs/etc/group",
        format!("{}:x:{}:\n", l.user.name, l.user.gid).into_bytes(),
        0o644,
    );
    if let Some(cert) = l.env.get("SSL_CERT_FILE") {
        ctx.file(&format!("rootfs{cert}"), &inputs.ca_bundle, 0o644, BASE_TAG)?;
    }
    for dir in &l.writable_dirs {
        ctx.dir(&format!("rootfs{dir}"), 0o1777);
    }
    let mut dockerfile = String::from("FROM scratch\nCOPY rootfs/ /\n");
    // Sorted by key, as nix/images.nix (mapAttrsToList) orders them.
    for (k, v) in &l.env {
        dockerfile.push_str(&format!("ENV {k}={}\n", json_string(v)));
    }
    dockerfile.push_str(&l.common_instructions(
        "envtorch-base",
        "envtorch core server: OpenEnv HTTP/WebSocket protocol, sessions, MCP, health",
    ));
    dockerfile.push_str(&format!(
        "ENTRYPOINT {}\n",
        json_array(std::slice::from_ref(&l.server_path))
    ));
    build_image(docker, BASE_TAG, dockerfile, ctx, built, replaced).await
}

async fn build_env(
    docker: &Docker,
    inputs: &BuildInputs,
    tag: &str,
    binary: &str,
    python: bool,
    built: &mut BuiltImages,
    replaced: &mut Vec<String>,
) -> Result<(), DockerError> {
    let l = &inputs.layout;
    let bin = inputs.binary(binary, tag)?;
    let mut ctx = Context::default();
    ctx.file(
        &format!("rootfs{}/{binary}", l.env_bin_dir.trim_end_matches('/')),
        &bin,
        0o755,
        tag,
    )?;
    if python {
        add_python(&mut ctx, &inputs.python_prefix, &l.python_path, tag)?;
    }
    // The base's id is part of the context digest, so a new base rebuilds its env images.
    let base_id = built.ids.get(BASE_TAG).cloned().unwrap_or_default();
    let mut dockerfile = format!("FROM {BASE_TAG}\n# base {base_id}\nCOPY rootfs/ /\n");
    dockerfile.push_str(&l.common_instructions(binary, &format!("envtorch {binary} environment")));
    dockerfile.push_str(&format!(
        "ENTRYPOINT {}\n",
        json_array(&l.env_entrypoint(binary))
    ));
    build_image(docker, tag, dockerfile, ctx, built, replaced).await
}

/// Copies the Python prefix and the shared libraries it needs into `rootfs`.
fn add_python(
    ctx: &mut Context,
    prefix: &Path,
    python_path: &str,
    tag: &str,
) -> Result<(), DockerError> {
    let err = |message: String| DockerError::Build {
        image: tag.into(),
        message,
    };
    let lib = prefix.join("lib");
    let stdlib = std::fs::read_dir(&lib)
        .map_err(|e| err(format!("{}: {e}", lib.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3.") && p.join("os.py").is_file())
        })
        .ok_or_else(|| err(format!("no lib/python3.*/os.py under {}", prefix.display())))?;
    let version = stdlib
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("python3")
        .to_owned();
    let exe = prefix.join("bin").join(&version);
    if !exe.is_file() {
        return Err(err(format!("{} is missing", exe.display())));
    }
    let image_prefix = PYTHON_PREFIX;
    ctx.file(
        &format!("rootfs{image_prefix}/bin/{version}"),
        &exe,
        0o755,
        tag,
    )?;
    ctx.symlink(&format!("rootfs{image_prefix}/bin/python3"), &version);
    ctx.symlink(
        &format!("rootfs{python_path}"),
        &format!("{image_prefix}/bin/{version}"),
    );
    // The standard library, minus what a sandboxed interpreter never needs.
    const SKIP: &[&str] = &[
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "site-packages",
        "venv",
        "pydoc_data",
    ];
    let mut dynload = Vec::new();
    ctx.tree(
        &stdlib,
        &format!("rootfs{image_prefix}/lib/{version}"),
        &|rel: &Path| {
            let first = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("");
            let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !(SKIP.contains(&first)
                || first.starts_with("config-")
                || name.starts_with("_tkinter")
                || name.starts_with("_test")
                || name.starts_with("xxlimited")
                || name.starts_with("_xxtestfuzz")
                || name.starts_with("_ctypes_test")
                || name.ends_with(".opt-1.pyc")
                || name.ends_with(".opt-2.pyc"))
        },
        &mut dynload,
        tag,
    )?;
    ctx.dir(
        &format!("rootfs{image_prefix}/lib/{version}/site-packages"),
        0o755,
    );
    // Shared libraries: the interpreter's and every extension module's, as ldd resolves them
    // here. libpython goes to /usr/lib (on the loader's default path), because the
    // interpreter's RUNPATH names this machine's prefix.
    let mut objects = vec![exe];
    objects.extend(
        dynload
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "so")),
    );
    let mut libs = BTreeSet::new();
    for object in &objects {
        for dep in ldd(object).map_err(err)? {
            libs.insert(dep);
        }
    }
    for dep in libs {
        let name = dep.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let target = if dep.starts_with(prefix) || name.starts_with("libpython") {
            format!("rootfs/usr/lib/{name}")
        } else {
            format!("rootfs{}", dep.display())
        };
        ctx.file(&target, &dep, 0o755, tag)?;
    }
    Ok(())
}

/// Absolute paths of the shared objects `object` loads (including the dynamic loader).
fn ldd(object: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(object)
        .output()
        .map_err(|e| format!("cannot run ldd (needed to collect Python's libraries): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable" (a static extension) is fine.
        return Ok(Vec::new());
    }
    let mut deps = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("not found") {
            return Err(format!("{}: {line}", object.display()));
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.trim().split(' ').next().unwrap_or(""),
            None => line.split(' ').next().unwrap_or(""),
        };
        if path.starts_with('/') {
            deps.push(PathBuf::from(path));
        }
    }
    Ok(deps)
}

/// The `sys.base_prefix` of `python3` on `PATH` (a venv's base, a pyenv version, /usr).
fn host_python_prefix() -> Result<PathBuf, DockerError> {
    let out = Command::new("python3")
        .args(["-I", "-c", "import sys; print(sys.base_prefix)"])
        .output()
        .map_err(|e| DockerError::Build {
            image: CODING_TAG.into(),
            message: format!("cannot run python3 to find its prefix: {e}"),
        })?;
    let prefix = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || prefix.is_empty() {
        return Err(DockerError::Build {
            image: CODING_TAG.into(),
            message: format!(
                "python3 could not tell its prefix: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(PathBuf::from(prefix))
}

async fn build_image(
    docker: &Docker,
    tag: &str,
    dockerfile: String,
    mut ctx: Context,
    built: &mut BuiltImages,
    replaced: &mut Vec<String>,
) -> Result<(), DockerError> {
    ctx.bytes("Dockerfile", dockerfile.into_bytes(), 0o644);
    let tar = ctx.into_tar(tag)?;
    let digest = format!("{:016x}", fnv1a(&tar));
    let existing = docker.inspect_image(tag).await.ok();
    if let Some(image) = &existing {
        let same = image
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(CONTEXT_LABEL))
            .is_some_and(|d| *d == digest);
        if same {
            if let Some(id) = &image.id {
                tracing::info!(image = tag, "up to date");
                built.ids.insert(tag.into(), id.clone());
                return Ok(());
            }
        }
    }
    tracing::info!(image = tag, bytes = tar.len(), "building");
    let labels = HashMap::from([(CONTEXT_LABEL, digest.as_str())]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(DockerError::Build {
                        image: tag.into(),
                        message: format!("{}\n{log}", detail.message.unwrap_or_default()),
                    });
                }
                if let Some(line) = info.stream {
                    log.push_str(&line);
                }
            }
            Err(e) => {
                return Err(DockerError::Build {
                    image: tag.into(),
                    message: format!("{e}\n{log}"),
                });
            }
        }
    }
    let image = docker
        .inspect_image(tag)
        .await
        .map_err(|e| DockerError::api("inspect built image", e))?;
    let id = image.id.unwrap_or_default();
    if let Some(old) = existing.and_then(|i| i.id) {
        if old != id {
            replaced.push(old);
        }
    }
    built.ids.insert(tag.into(), id);
    built.rebuilt.push(tag.into());
    Ok(())
}

/// Removes an image that a rebuild replaced, if nothing uses it any more (it may still be the
/// parent of another image or used by a container; then it stays, untagged, and is reported).
async fn remove_if_unused(docker: &Docker, id: &str) {
    let Ok(image) = docker.inspect_image(id).await else {
        return;
    };
    if image.repo_tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return;
    }
    if let Err(e) = docker
        .remove_image(
            id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
    {
        tracing::warn!(image = id, "cannot remove the replaced image: {e}");
    }
}

/// An in-memory build context. Entries are sorted and have fixed owners and times, so the
/// same inputs give the same bytes (and the same digest).
#[derive(Default)]
struct Context {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir(u32),
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

impl Context {
    fn parents(&mut self, path: &str) {
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.entries.entry(at.clone()).or_insert(Entry::Dir(0o755));
        }
    }

    fn dir(&mut self, path: &str, mode: u32) {
        let path = path.trim_matches('/').to_owned();
        self.parents(&path);
        self.entries.insert(path, Entry::Dir(mode));
    }

    fn bytes(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = path.trim_matches('/').to_owned();
        self.parents(&path);
        self.entries.insert(path, Entry::File { data, mode });
    }

    fn file(&mut self, path: &str, source: &Path, mode: u32, tag: &str) -> Result<(), DockerError> {
        let data = std::fs::read(source).map_err(|e| DockerError::Build {
            image: tag.into(),
            message: format!("{}: {e}", source.display()),
        })?;
        self.bytes(path, data, mode);
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_matches('/').to_owned();
        self.parents(&path);
        self.entries.insert(path, Entry::Symlink(target.to_owned()));
    }

    /// Copies a directory tree (following nothing: symlinks are kept as symlinks), keeping
    /// only paths `keep` accepts; regular files under `lib-dynload` are also collected.
    fn tree(
        &mut self,
        source: &Path,
        dest: &str,
        keep: &dyn Fn(&Path) -> bool,
        dynload: &mut Vec<PathBuf>,
        tag: &str,
    ) -> Result<(), DockerError> {
        let mut stack = vec![source.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| DockerError::Build {
                image: tag.into(),
                message: format!("{}: {e}", dir.display()),
            })?;
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(source) else {
                    continue;
                };
                if !keep(rel) {
                    continue;
                }
                let target = format!("{dest}/{}", rel.display());
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    if let Ok(link) = std::fs::read_link(&path) {
                        self.symlink(&target, &link.to_string_lossy());
                    }
                } else if meta.is_dir() {
                    self.dir(&target, 0o755);
                    stack.push(path);
                } else if meta.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if meta.permissions().mode() & 0o111 != 0 {
                        0o755
                    } else {
                        0o644
                    };
                    if rel.starts_with("lib-dynload") {
                        dynload.push(path.clone());
                    }
                    self.file(&target, &path, mode, tag)?;
                }
            }
        }
        Ok(())
    }

    fn into_tar(self, tag: &str) -> Result<Vec<u8>, DockerError> {
        let err = |e: std::io::Error| DockerError::Build {
            image: tag.into(),
            message: format!("cannot write the build context: {e}"),
        };
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(err)?;
                }
                Entry::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(mode);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, &path, data.as_slice())
                        .map_err(err)?;
                }
                Entry::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &target)
                        .map_err(err)?;
                }
            }
        }
        builder.into_inner().map_err(err)
    }
}

/// True for an ELF executable without a `PT_INTERP` program header (statically linked).
fn is_static_elf(bytes: &[u8]) -> bool {
    let read = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at + n)?;
        Some(
            b.iter()
                .rev()
                .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
        )
    };
    // 64-bit little-endian ELF only (the images are x86_64/aarch64).
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    else {
        return false;
    };
    for i in 0..phnum {
        let Ok(at) = usize::try_from(phoff + i * phentsize) else {
            return false;
        };
        match read(at, 4) {
            Some(3) => return false, // PT_INTERP
            Some(_) => {}
            None => return false,
        }
    }
    true
}

/// FNV-1a, 64 bit: a stable digest of the build context (not for security: it only decides
/// whether to rebuild).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn json_array(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_parses_and_gives_the_nix_entrypoints() {
        // Read at run time (not include_str!): Nix builds this crate from a source set
        // without nix/, and the layout is only needed where images are built.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nix/image-layout.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("{} not present; skipped", path.display());
            return;
        };
        let l = Layout::from_json(&text).unwrap();
        assert_ne!(l.user.uid, 0);
        assert_eq!(
            l.env_entrypoint("echo-env"),
            ["/bin/envtorch-server", "--env", "/bin/echo-env"]
        );
        assert_eq!(l.env.get("PORT").map(String::as_str), Some("8000"));
        let common = l.common_instructions("t", "d");
        assert!(common.contains("USER 65532:65532\n"), "{common}");
        assert!(
            common.contains(r#"CMD ["/bin/envtorch-server","health"]"#),
            "{common}"
        );
    }

    #[test]
    fn contexts_are_deterministic() {
        let make = || {
            let mut c = Context::default();
            c.bytes("rootfs/etc/passwd", b"x".to_vec(), 0o644);
            c.dir("rootfs/tmp", 0o1777);
            c.symlink("rootfs/usr/bin/python3", "/opt/python3/bin/python3.11");
            c.into_tar("t").unwrap()
        };
        assert_eq!(fnv1a(&make()), fnv1a(&make()));
        let mut archive = tar::Archive::new(std::io::Cursor::new(make()));
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        // Parents are created, and /tmp keeps its sticky world-writable mode.
        assert!(
            entries.contains(&("rootfs/tmp/".to_owned(), 0o1777)),
            "{entries:?}"
        );
        assert!(
            entries.contains(&("rootfs/usr/bin/".to_owned(), 0o755)),
            "{entries:?}"
        );
    }

    #[test]
    fn static_elf_detection() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // This test binary is dynamically linked in a normal build.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let _ = is_static_elf(&me);
    }
}
