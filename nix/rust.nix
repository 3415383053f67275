# The Cargo workspace built with crane: one shared dependency build
# (buildDepsOnly), one package per binary crate, static musl binaries, and
# the Rust checks (clippy, rustfmt, nextest, rustdoc, doctests).
{
  pkgs,
  crane,
  envs,
}:
let
  inherit (pkgs) lib;
  inherit (lib) fileset;

  root = ../.;
  rootToml = lib.importTOML (root + "/Cargo.toml");
  version = rootToml.workspace.package.version;

  # Static binaries: rust-overlay's toolchain with the musl std, as in crane's
  # cross-musl example. x86_64-unknown-linux-musl / aarch64-unknown-linux-musl.
  muslTarget = "${pkgs.stdenv.hostPlatform.parsed.cpu.name}-unknown-linux-musl";
  toolchainFor = p: p.rust-bin.stable.latest.default.override { targets = [ muslTarget ]; };
  craneLib = (crane.mkLib pkgs).overrideToolchain toolchainFor;

  # The binary crates: crate (cargo package), dir, bin (executable name).
  # Env crates come from nix/envs.nix; their executable is the crate name.
  binaries = [
    {
      crate = "envtorch-server";
      dir = "crates/envtorch-server";
      bin = "envtorch-server";
    }
    {
      crate = "envtorch-cli";
      dir = "crates/envtorch-cli";
      bin = "envtorch";
    }
    {
      crate = "envtorch-bench";
      dir = "bench";
      bin = "envtorch-bench";
    }
  ]
  ++ map (e: {
    crate = e.name;
    inherit (e) dir;
    bin = e.name;
  }) envs;

  # Everything cargo reads for the whole workspace. Whole crate directories
  # (not only *.rs/*.toml) so include_str!/include_bytes! fixtures work.
  workspaceFiles = fileset.unions [
    (root + "/Cargo.toml")
    (root + "/Cargo.lock")
    (fileset.maybeMissing (root + "/.cargo/config.toml"))
    (fileset.maybeMissing (root + "/clippy.toml"))
    (fileset.maybeMissing (root + "/rustfmt.toml"))
    (root + "/crates")
    (fileset.maybeMissing (root + "/bench"))
  ];
  workspaceSrc = fileset.toSource {
    inherit root;
    fileset = workspaceFiles;
  };

  # --- per-crate sources --------------------------------------------------
  # A crate's source holds the real files of the crate and of the workspace
  # crates it depends on (transitively, read from the Cargo.toml files at
  # evaluation time, no IFD); every other member is crane's dummy (manifest +
  # stub targets), so cargo still sees the whole workspace and `--locked`
  # holds, but editing one env crate only changes that crate's source.
  wsDeps = rootToml.workspace.dependencies or { };
  relPath = p: lib.removePrefix "./" (lib.path.removePrefix root p);
  pathDepsOf =
    dir:
    let
      toml = lib.importTOML (root + "/${dir}/Cargo.toml");
      sections = [
        (toml.dependencies or { })
        (toml.build-dependencies or { })
      ]
      ++ lib.concatMap (t: [
        (t.dependencies or { })
        (t.build-dependencies or { })
      ]) (lib.attrValues (toml.target or { }));
      depDir =
        name: spec:
        if lib.isAttrs spec && spec ? path then
          relPath (root + "/${dir}/${spec.path}")
        else if lib.isAttrs spec && (spec.workspace or false) && lib.isAttrs (wsDeps.${name} or null) then
          if wsDeps.${name} ? path then relPath (root + "/${wsDeps.${name}.path}") else null
        else
          null;
    in
    lib.filter (d: d != null) (lib.concatMap (s: lib.mapAttrsToList depDir s) sections);
  crateClosure =
    dir:
    map (x: x.key) (
      builtins.genericClosure {
        startSet = [ { key = dir; } ];
        operator = x: map (d: { key = d; }) (pathDepsOf x.key);
      }
    );
  realFilesFor =
    dir:
    fileset.toSource {
      inherit root;
      fileset = fileset.unions ([ (root + "/Cargo.toml") ] ++ map (d: root + "/${d}") (crateClosure dir));
    };
  crateSrc =
    dir:
    craneLib.mkDummySrc {
      src = workspaceSrc;
      # -f: the stubs are read-only copies from the store.
      extraDummyScript = ''
        cp -rf --no-preserve=mode,ownership ${realFilesFor dir}/. $out/
      '';
    };

  # --- shared arguments ---------------------------------------------------
  commonArgs = {
    pname = "envtorch";
    inherit version;
    src = workspaceSrc;
    strictDeps = true;
    # Vendored once from the real Cargo.lock; passing it explicitly also keeps
    # crane from reading the (derivation) per-crate sources at evaluation.
    cargoVendorDir = craneLib.vendorCargoDeps { src = workspaceSrc; };
    cargoExtraArgs = "--locked";
    CARGO_BUILD_TARGET = muslTarget;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
  };

  # The one dependency build every crate and check below reuses.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;

  # Decidable without building: the crate is where nix says, under that
  # name, with that executable, and inside the workspace's member globs.
  checkBinary =
    b:
    let
      manifest = root + "/${b.dir}/Cargo.toml";
      toml = lib.importTOML manifest;
      bins = map (t: t.name) (toml.bin or [ ]);
      autoBin = builtins.pathExists (root + "/${b.dir}/src/main.rs") && toml.package.name == b.bin;
    in
    assert lib.assertMsg (builtins.pathExists manifest)
      "nix: ${b.dir}/Cargo.toml does not exist (crate ${b.crate}); is it committed (git add)?";
    assert lib.assertMsg (
      toml.package.name or null == b.crate
    ) "nix: ${b.dir}/Cargo.toml names package '${toml.package.name or "?"}', expected '${b.crate}'";
    assert lib.assertMsg (
      lib.elem b.bin bins || autoBin
    ) "nix: crate ${b.crate} has no binary target '${b.bin}'";
    assert lib.assertMsg (lib.any (
      m: builtins.match (lib.replaceStrings [ "*" ] [ "[^/]*" ] m) b.dir != null
    ) rootToml.workspace.members) "nix: ${b.dir} is not covered by workspace.members in Cargo.toml";
    b;

  mkBinary =
    b0:
    let
      b = checkBinary b0;
    in
    craneLib.buildPackage (
      commonArgs
      // {
        pname = b.crate;
        src = crateSrc b.dir;
        inherit cargoArtifacts;
        cargoExtraArgs = "--locked --package ${b.crate} --bin ${b.bin}";
        # Tests run once, workspace-wide, in checks.nextest.
        doCheck = false;
        meta.mainProgram = b.bin;
      }
    );
  packages = lib.listToAttrs (map (b: lib.nameValuePair b.crate (mkBinary b)) binaries);

  # Tests that need Docker (test binary or test names matching `container`)
  # cannot run in the Nix sandbox; CI runs the images for real instead.
  nextestFilter = "not (binary(/container/) | test(/container/))";

  # The Python runtime the coding image ships, also on PATH for the tests.
  python = pkgs.python3Minimal;

  checks = {
    clippy = craneLib.cargoClippy (
      commonArgs
      // {
        inherit cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      }
    );
    rustfmt = craneLib.cargoFmt {
      pname = "envtorch";
      inherit version;
      src = workspaceSrc;
    };
    nextest = craneLib.cargoNextest (
      commonArgs
      // {
        inherit cargoArtifacts;
        partitions = 1;
        partitionType = "count";
        cargoNextestExtraArgs = "--no-tests=warn -E '${nextestFilter}'";
        nativeBuildInputs = [ python ];
        # The server's integration tests start the real environment binaries and the
        # fault-injecting example; `nextest run` alone builds neither.
        buildPhaseCargoCommand = ''
          mkdir -p $out
          cargo nextest --version
          cargo build --workspace --bins --examples --locked ''${CARGO_PROFILE:+--profile $CARGO_PROFILE}
        '';
        # No venvs in the sandbox: the client's tests against the Python reference
        # servers run in .ci/run instead.
        env.ENVTORCH_SKIP_REFERENCE = "1";
      }
    );
    rustdoc = craneLib.cargoDoc (
      commonArgs
      // {
        inherit cargoArtifacts;
        cargoDocExtraArgs = "--no-deps --workspace";
        env.RUSTDOCFLAGS = "--deny warnings";
      }
    );
    doctest = craneLib.cargoDocTest (commonArgs // { inherit cargoArtifacts; });
  }
  # A static binary references no store path: its closure is itself.
  // lib.mapAttrs' (
    name: pkg:
    lib.nameValuePair "static-${name}" (
      pkgs.runCommand "static-${name}"
        {
          exportReferencesGraph = [
            "graph"
            pkg
          ];
        }
        ''
          paths=$(grep '^/' graph | grep -v '\.drv$' | sort -u)
          if [ "$paths" != "${pkg}" ]; then
            echo "${name}: closure is not the binary alone:" >&2
            echo "$paths" >&2
            exit 1
          fi
          echo "$paths" > $out
        ''
    )
  ) packages;

  devShell = craneLib.devShell {
    packages = [
      pkgs.cargo-nextest
      pkgs.jq
      pkgs.skopeo
      pkgs.nixfmt-tree
      (pkgs.python3.withPackages (ps: [ ps.websockets ]))
    ];
  };
in
{
  inherit
    packages
    checks
    devShell
    cargoArtifacts
    python
    version
    binaries
    ;
  # For nix/eval-offline.sh and docs: what each crate's source contains.
  crateDirs = lib.listToAttrs (map (b: lib.nameValuePair b.crate (crateClosure b.dir)) binaries);
}
