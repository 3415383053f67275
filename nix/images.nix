# Container images. Every path, the user, the environment, the healthcheck
# and the entrypoint come from nix/image-layout.json, which the Rust
# test-image builder (crates/envtorch-docker) reads too.
{
  pkgs,
  rust,
  envs,
  layout,
  revision,
}:
let
  inherit (pkgs) lib dockerTools;

  # --- evaluation-time checks of the layout (every use of `l` runs them) ---
  isAbs = p: lib.isString p && lib.hasPrefix "/" p;
  # Where dockerTools.caCertificates puts the bundle.
  caPaths = [
    "/etc/ssl/certs/ca-bundle.crt"
    "/etc/ssl/certs/ca-certificates.crt"
    "/etc/pki/tls/certs/ca-bundle.crt"
  ];
  l =
    let
      j = layout;
    in
    assert lib.assertMsg (
      j.user.uid != 0 && j.user.gid != 0
    ) "image-layout.json: the image user must be unprivileged (uid and gid != 0)";
    assert lib.assertMsg
      (lib.all isAbs (
        [
          j.serverPath
          j.envBinDir
          j.workDir
          j.user.home
          j.user.shell
          j.pythonPath
        ]
        ++ j.writableDirs
      ))
      "image-layout.json: serverPath, envBinDir, workDir, user.home, user.shell, pythonPath and writableDirs must be absolute paths";
    assert lib.assertMsg (lib.elem "/tmp" j.writableDirs)
      "image-layout.json: writableDirs must contain /tmp";
    assert lib.assertMsg (
      (j.env.PORT or null) == toString j.port
    ) "image-layout.json: env.PORT (${j.env.PORT or "unset"}) must equal port (${toString j.port})";
    assert lib.assertMsg
      (
        lib.take 2 j.healthcheck.test == [
          "CMD"
          j.serverPath
        ]
      )
      "image-layout.json: healthcheck.test must be [\"CMD\", serverPath, ...]: exec form running the server's own health subcommand (the image has no shell and no curl)";
    assert lib.assertMsg (lib.any (lib.hasInfix "{binary}") j.envCommand)
      "image-layout.json: envCommand must mention {binary}";
    assert lib.assertMsg (!(j.env ? SSL_CERT_FILE) || lib.elem j.env.SSL_CERT_FILE caPaths)
      "image-layout.json: env.SSL_CERT_FILE must be one of ${toString caPaths} (what dockerTools.caCertificates provides)";
    assert lib.assertMsg (lib.all (lib.hasPrefix "org.opencontainers.image.") (
      lib.attrNames j.labels
    )) "image-layout.json: labels must be org.opencontainers.image.* keys";
    assert lib.assertMsg (lib.allUnique (
      map (e: e.name) envs
    )) "nix/envs.nix: environment names must be unique";
    assert lib.assertMsg (
      !(lib.elem "base-image" (map (e: e.name) envs))
    ) "nix/envs.nix: the name base-image is taken by the base image";
    assert lib.assertMsg (lib.all (
      e: e.runtime == null || runtimes ? ${e.runtime}
    ) envs) "nix/envs.nix: runtime must be null or one of ${toString (lib.attrNames runtimes)}";
    j;

  server = rust.packages.envtorch-server;

  # --- image configuration -----------------------------------------------
  seconds = s: s * 1000000000; # Docker durations are nanoseconds
  labels =
    { title, description }:
    l.labels
    // {
      "org.opencontainers.image.title" = title;
      "org.opencontainers.image.description" = description;
      "org.opencontainers.image.version" = rust.version;
      "org.opencontainers.image.revision" = revision;
    };
  # The whole config except Env: an env image inherits Env from the base
  # (dockerTools merges the base image's Env into images built on it).
  mkConfig =
    {
      title,
      description,
      entrypoint,
    }:
    {
      Entrypoint = entrypoint;
      User = "${toString l.user.uid}:${toString l.user.gid}";
      WorkingDir = l.workDir;
      ExposedPorts."${toString l.port}/tcp" = { };
      Healthcheck = {
        Test = l.healthcheck.test;
        Interval = seconds l.healthcheck.intervalSeconds;
        Timeout = seconds l.healthcheck.timeoutSeconds;
        StartPeriod = seconds l.healthcheck.startPeriodSeconds;
        Retries = l.healthcheck.retries;
      };
      Labels = labels { inherit title description; };
    };

  # `ln -s` lines for extraCommands, which runs in the customisation layer's
  # root: the links land in the image, their targets become store layers.
  linkCommands =
    links:
    lib.concatStrings (
      lib.mapAttrsToList (to: from: ''
        mkdir -p .${dirOf to}
        ln -s ${from} .${to}
      '') links
    );

  # --- the base image ------------------------------------------------------
  base = rec {
    name = "envtorch-base";
    config =
      mkConfig {
        title = name;
        description = "envtorch core server: OpenEnv HTTP/WebSocket protocol, sessions, MCP, health";
        entrypoint = [ l.serverPath ];
      }
      // {
        Env = lib.mapAttrsToList (k: v: "${k}=${toString v}") l.env;
      };
  };
  base-image = dockerTools.buildLayeredImage {
    inherit (base) name config;
    tag = "latest";
    # The CA bundle at /etc/ssl/certs/ca-bundle.crt and the usual other places.
    contents = [ dockerTools.caCertificates ];
    # passwd/group with the one unprivileged user; world-writable sticky
    # directories (modes survive: the customisation layer is a tarball).
    extraCommands = ''
      ${linkCommands { ${l.serverPath} = lib.getExe server; }}
      mkdir -p etc
      echo '${l.user.name}:x:${toString l.user.uid}:${toString l.user.gid}:${l.user.name}:${l.user.home}:${l.user.shell}' > etc/passwd
      echo '${l.user.name}:x:${toString l.user.gid}:' > etc/group
      ${lib.concatMapStrings (d: "mkdir -p -m 1777 .${d}\n") l.writableDirs}
    '';
  };

  # --- environment images --------------------------------------------------
  # Extra runtimes an environment may need beside its static binary.
  runtimes = {
    # The coding env finds `python3` on PATH (or $CODING_ENV_PYTHON).
    python.${l.pythonPath} = lib.getExe' rust.python "python3";
  };
  envSpec =
    {
      name,
      description,
      package,
      binary ? package.meta.mainProgram,
      runtime ? null,
    }:
    rec {
      binPath = "${l.envBinDir}/${binary}";
      command = [ l.serverPath ] ++ map (lib.replaceStrings [ "{binary}" ] [ binary ]) l.envCommand;
      links = {
        ${binPath} = "${package}/bin/${binary}";
      }
      // lib.optionalAttrs (runtime != null) runtimes.${runtime};
      config =
        assert lib.assertMsg (lib.elem binPath command)
          "image-layout.json: envCommand with {binary} = ${binary} must name ${binPath} (envBinDir/binary)";
        mkConfig {
          title = name;
          inherit description;
          entrypoint = command;
        };
    };
  # An environment image: the base image's layers verbatim, then the env's
  # store paths (a static binary: just itself), then its links.
  mkEnvImage =
    args@{ name, ... }:
    let
      spec = envSpec args;
    in
    dockerTools.buildLayeredImage {
      inherit name;
      inherit (spec) config;
      tag = "latest";
      fromImage = base-image;
      extraCommands = linkCommands spec.links;
    };

  envArgs = e: {
    inherit (e) name description runtime;
    package = rust.packages.${e.name};
  };
  envImages = lib.listToAttrs (map (e: lib.nameValuePair e.name (mkEnvImage (envArgs e))) envs);

  images = {
    inherit base-image;
  }
  // envImages;
  imageNames = {
    base-image = base.name;
  }
  // lib.genAttrs (map (e: e.name) envs) (n: n);

  # --- `nix run .#<image>`: load into the local Docker daemon --------------
  loader =
    attr: image:
    let
      ref = "${imageNames.${attr}}:latest";
    in
    {
      type = "app";
      meta.description = "Load the ${ref} image into the local Docker daemon";
      program = lib.getExe (
        pkgs.writeShellApplication {
          name = "load-${attr}";
          runtimeInputs = [ pkgs.docker-client ];
          text = ''
            docker load --input ${image} >&2
            echo ${ref}
          '';
        }
      );
    };

  # --- checks: layer sharing, config, size budgets ------------------------
  MiB = 1024 * 1024;
  baseBudgetMiB = 32;
  # Top-level entries the base image may have: nothing but these.
  baseTopLevel = lib.unique (
    [
      "nix"
      "etc"
    ]
    ++ map (p: lib.head (lib.splitString "/" (lib.removePrefix "/" p))) (
      l.writableDirs ++ [ l.serverPath ]
    )
  );
  layerCheck =
    {
      name,
      image,
      budgetMiB,
      config,
    }:
    pkgs.runCommand "image-check-${name}"
      {
        nativeBuildInputs = [ pkgs.jq ];
        inherit image;
        base = base-image;
        budget = budgetMiB * MiB;
        wantConfig = builtins.toJSON config;
        isBase = lib.optionalString (name == "base-image") "1";
        allowedTop = lib.concatStringsSep "\n" baseTopLevel;
      }
      ''
        fail() { echo "image-check-${name}: $*" >&2; exit 1; }
        mkdir base img
        tar -xzf "$base" -C base
        tar -xzf "$image" -C img
        bman=base/manifest.json iman=img/manifest.json
        bcfg=base/$(jq -r '.[0].Config' $bman)
        icfg=img/$(jq -r '.[0].Config' $iman)

        # The base image's layers come first, verbatim (same digests, same order).
        jq -e --slurpfile b $bman '.[0].Layers[0:($b[0][0].Layers | length)] == $b[0][0].Layers' $iman >/dev/null \
          || fail "the base image's layer digests are not a verbatim prefix of this image's"
        jq -e --slurpfile b $bcfg '.rootfs.diff_ids[0:($b[0].rootfs.diff_ids | length)] == $b[0].rootfs.diff_ids' $icfg >/dev/null \
          || fail "the base image's diff_ids are not a prefix of this image's"
        # No layer twice (a base store path in an env closure would come back as the same layer).
        jq -e '.rootfs.diff_ids | length == (unique | length)' $icfg >/dev/null || fail "a layer repeats (diff_ids)"
        jq -e '.[0].Layers | length == (unique | length)' $iman >/dev/null || fail "a layer repeats (manifest)"

        # The config is the one declared in nix/images.nix; Env is exactly the base's.
        jq -e --argjson want "$wantConfig" '(.config | del(.Env)) == ($want | del(.Env))' $icfg >/dev/null \
          || { jq .config $icfg >&2; fail "the config differs from the one declared in nix/images.nix"; }
        jq -e --slurpfile b $bcfg '.config.Env == $b[0].config.Env' $icfg >/dev/null \
          || fail "Env differs from the base image's"

        # Sizes: uncompressed layer tarballs, in total and added over the base.
        nbase=$(jq '.[0].Layers | length' $bman)
        total=0 added=0 i=0
        for layer in $(jq -r '.[0].Layers[]' $iman); do
          s=$(stat -c %s "img/$layer")
          total=$((total + s))
          if [ -n "$isBase" ] || [ $i -ge $nbase ]; then added=$((added + s)); fi
          i=$((i + 1))
        done
        echo "${name}: $i layers, $total bytes uncompressed, $added bytes added over the base (budget $budget)"
        [ $added -le $budget ] || fail "$added bytes exceed the budget of ${toString budgetMiB} MiB"

        if [ -n "$isBase" ]; then
          for layer in $(jq -r '.[0].Layers[]' $iman); do tar -tf "img/$layer"; done \
            | sed 's|^\./||; s|^/||; s|/.*||' | grep -v '^\.\?$' | sort -u > top
          echo "$allowedTop" | sort -u > allowed
          extra=$(comm -23 top allowed)
          [ -z "$extra" ] || fail "unexpected top-level entries in the base image: $extra"
        fi

        mkdir $out
        jq -n --arg name ${name} --argjson layers $i --argjson total $total --argjson added $added \
          --argjson budget $budget --argjson compressed "$(stat -c %s "$image")" \
          '{$name, $layers, uncompressed: $total, addedOverBase: $added, $budget, $compressed}' > $out/sizes.json
      '';

  checks = {
    image-base-image = layerCheck {
      name = "base-image";
      image = base-image;
      budgetMiB = baseBudgetMiB;
      inherit (base) config;
    };
  }
  // lib.listToAttrs (
    map (
      e:
      lib.nameValuePair "image-${e.name}" (layerCheck {
        inherit (e) name budgetMiB;
        image = envImages.${e.name};
        inherit (envSpec (envArgs e)) config;
      })
    ) envs
  );
in
{
  inherit
    images
    checks
    mkEnvImage
    baseBudgetMiB
    ;
  apps = lib.mapAttrs loader images;
}
