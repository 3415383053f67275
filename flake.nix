{
  description = "envtorch: OpenEnv environments served from small reproducible container images";

  inputs = {
    # crane requires nixpkgs >= 26.05.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    # The toolchain with the musl std for static binaries (crane's cross-musl example).
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      crane,
      rust-overlay,
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # OCI label org.opencontainers.image.revision.
      revision = self.rev or self.dirtyRev or "unknown";
      perSystem = lib.genAttrs systems (
        system:
        import ./nix {
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          inherit crane revision;
        }
      );
      pick = attr: lib.mapAttrs (_: s: s.${attr}) perSystem;
    in
    {
      packages = pick "packages";
      checks = pick "checks";
      apps = pick "apps";
      devShells = pick "devShells";
      formatter = pick "formatter";
      # Hydra: hydraJobs.<packages|checks>.<system>.<name>.
      hydraJobs = {
        inherit (self) packages checks;
      };
    };
}
