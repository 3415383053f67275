# Per-system outputs: crates (nix/rust.nix) wired into images (nix/images.nix).
{
  pkgs,
  crane,
  revision,
}:
let
  inherit (pkgs) lib;
  envs = import ./envs.nix;
  layout = builtins.fromJSON (builtins.readFile ./image-layout.json);
  rust = import ./rust.nix { inherit pkgs crane envs; };
  images = import ./images.nix {
    inherit
      pkgs
      rust
      envs
      layout
      revision
      ;
  };
  # Env binaries are `<crate>-bin`: the plain env names are the images.
  envNames = map (e: e.name) envs;
  binaryPackages = lib.mapAttrs' (
    name: pkg: lib.nameValuePair (if lib.elem name envNames then "${name}-bin" else name) pkg
  ) rust.packages;
in
{
  packages =
    binaryPackages
    // images.images
    // {
      default = rust.packages.envtorch-server;
    };
  checks =
    rust.checks
    // images.checks
    // {
      # The Nix files are nixfmt-formatted (`nix fmt` fixes them).
      nixfmt =
        pkgs.runCommand "nixfmt-check"
          {
            nativeBuildInputs = [ pkgs.nixfmt ];
            src = lib.fileset.toSource {
              root = ../.;
              fileset = lib.fileset.unions [
                ../flake.nix
                (lib.fileset.fileFilter (f: f.hasExt "nix") ./.)
              ];
            };
          }
          ''
            find "$src" -name '*.nix' -print0 | xargs -0 nixfmt --check
            touch $out
          '';
    };
  inherit (images) apps;
  devShells.default = rust.devShell;
  formatter = pkgs.nixfmt-tree;
}
