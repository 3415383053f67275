# The environment images, one entry each. Adding an environment is one line
# here (see docs/nix.md). Fields:
#   name        image/app name (`<name>`, image `<name>:latest`) and crate name
#   dir         crate directory, relative to the repository root
#   description OCI description label
#   runtime     extra runtime beside the static binary: "python" or null
#   budgetMiB   budget for the layers this image adds on top of the base
#               (uncompressed layer tarballs), checked by checks.image-<name>
[
  {
    name = "echo-env";
    dir = "crates/envs/echo";
    description = "envtorch echo environment (MCP tools), served by envtorch-server";
    runtime = null;
    budgetMiB = 16;
  }
  {
    name = "coding-env";
    dir = "crates/envs/coding";
    description = "envtorch coding environment (Python execution under OS isolation)";
    runtime = "python";
    budgetMiB = 160;
  }
  {
    name = "game-2048-env";
    dir = "crates/envs/game-2048";
    description = "envtorch 2048 game environment";
    runtime = null;
    budgetMiB = 16;
  }
]
