#!/usr/bin/env bash
# Offline evaluation of this flake (no builds): the shared nix-eval harness,
# then structural checks of the derivation graph.
#
#   nix/eval-offline.sh [--system SYSTEM]
#
# 1. run.sh: flake show, flake check --no-build (no IFD), every output
#    evaluates, flake.lock checked against the mirrors and left untouched.
# 2. With run.sh --overrides (the same offline inputs):
#    a. every environment image is built FROM base-image (its derivation
#       closure holds base-image, and its config derivation's fromImage is
#       base-image's output path); base-image's closure holds envtorch-server
#       and each env image's closure holds its <env>-bin package;
#    b. all crate packages and the cargo checks share one buildDepsOnly
#       derivation (the same cargoArtifacts, exactly one *-deps-* derivation);
#    c. editing one env crate changes only that crate's derivation (in a
#       scratch copy of the tracked files: append a comment to one of its .rs
#       files, re-evaluate every crate package and the deps derivation).
#
# Needs the harness (NIX_EVAL_DIR, default ../shared/nix-eval next to the
# repository) and its mirrors (NIX_EVAL_MIRRORS, default ../.mirror). When
# either is absent it prints SKIP and exits 0; any failure exits 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
system=${NIX_EVAL_SYSTEM:-x86_64-linux}
while [ $# -gt 0 ]; do
  case $1 in
    --system)
      system=${2:?--system needs a value}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "eval-offline: unknown argument '$1'" >&2
      exit 2
      ;;
  esac
  shift
done

harness=${NIX_EVAL_DIR:-$root/../shared/nix-eval}
export NIX_EVAL_MIRRORS=${NIX_EVAL_MIRRORS:-$root/../.mirror}
if [ ! -x "$harness/run.sh" ]; then
  echo "SKIP: nix-eval harness not found at $harness (set NIX_EVAL_DIR); nothing was checked"
  exit 0
fi
for m in nix-community+nixpkgs.lib ipetkov+crane oxalica+rust-overlay; do
  if [ ! -d "$NIX_EVAL_MIRRORS/$m/repo" ]; then
    echo "SKIP: mirror $NIX_EVAL_MIRRORS/$m/repo is absent (set NIX_EVAL_MIRRORS); nothing was checked"
    exit 0
  fi
done

nix=${NIX_EVAL_NIX:-${NIX_EVAL_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-eval}/bin/nix}
pass=0 fail=0
ok() {
  echo "PASS: $*"
  pass=$((pass + 1))
}
bad() {
  echo "FAIL: $*"
  fail=$((fail + 1))
}

# --- 1. the harness ------------------------------------------------------
echo "== nix-eval harness ($harness/run.sh)"
if (cd "$root" && "$harness/run.sh" --system "$system"); then
  ok "harness run.sh"
else
  bad "harness run.sh (see its FAIL lines above)"
fi

# --- 2. structural checks ------------------------------------------------
echo "== structural checks ($system)"
read -ra ov <<<"$(cd "$root" && "$harness/run.sh" --overrides 2>/dev/null)"
opts=(--option allow-import-from-derivation false "${ov[@]}")
nixq() { "$nix" "$@" "${opts[@]}" 2>/dev/null; }
P=packages.$system
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mapfile -t envs < <(nixq eval --json --file "$root/nix/envs.nix" --apply 'map (e: e.name)' | jq -r '.[]')
[ ${#envs[@]} -gt 0 ] || bad "could not read the environment list from nix/envs.nix"
# Crate packages: every package but the images and the `default` alias.
# A crate that does not evaluate (e.g. not written yet) maps to "error".
crate_pkgs() { # FLAKE -> JSON { name: drvPath | "error" }
  nixq eval --json "$1#$P" --apply "ps: builtins.mapAttrs (n: p: let r = builtins.tryEval p.drvPath; in if r.success then r.value else \"error\") (removeAttrs ps [ \"default\" \"base-image\" $(printf '"%s" ' "${envs[@]}")])"
}

# a. FROM base-image, and each image holds its binary.
if base_drv=$(nixq eval --raw "$root#$P.base-image.drvPath") &&
  base_out=$(nixq eval --raw "$root#$P.base-image.outPath"); then
  server_drv=$(nixq eval --raw "$root#$P.envtorch-server.drvPath" || echo none)
  if nixq derivation show -r "$root#$P.base-image" | jq -e --arg s "$server_drv" 'has($s)' >/dev/null; then
    ok "base-image holds envtorch-server ($(basename "$server_drv"))"
  else
    bad "base-image does not depend on the envtorch-server package"
  fi
  for e in "${envs[@]}"; do
    bin_drv=$(nixq eval --raw "$root#$P.$e-bin.drvPath" || echo none)
    if ! nixq derivation show -r "$root#$P.$e" >"$tmp/closure.json"; then
      bad "$e: derivation show failed"
      continue
    fi
    if jq -e --arg b "$base_drv" 'has($b)' "$tmp/closure.json" >/dev/null &&
      jq -e --arg o "$base_out" '[.[] | select(.env.fromImage? == $o)] | length >= 1' "$tmp/closure.json" >/dev/null; then
      ok "$e is built FROM base-image (closure holds $(basename "$base_drv"), fromImage = its output)"
    else
      bad "$e is not built FROM base-image"
    fi
    if jq -e --arg b "$bin_drv" 'has($b)' "$tmp/closure.json" >/dev/null; then
      ok "$e holds its binary $e-bin ($(basename "$bin_drv"))"
    else
      bad "$e does not depend on its binary package $e-bin"
    fi
  done
else
  bad "base-image does not evaluate"
fi

# b. One shared dependency build.
if pkgs_json=$(crate_pkgs "$root"); then
  broken=$(jq -r '[to_entries[] | select(.value == "error") | .key] | join(" ")' <<<"$pkgs_json")
  [ -z "$broken" ] || bad "crate packages that do not evaluate (not checked below): $broken"
  mapfile -t crates < <(jq -r 'to_entries[] | select(.value != "error") | .key' <<<"$pkgs_json")
  arts=()
  for c in "${crates[@]}"; do arts+=("$(nixq eval --raw "$root#$P.$c.cargoArtifacts.drvPath" || echo "none:$c")"); done
  for c in clippy nextest rustdoc doctest; do
    arts+=("$(nixq eval --raw "$root#checks.$system.$c.cargoArtifacts.drvPath" || echo "none:$c")")
  done
  distinct=$(printf '%s\n' "${arts[@]}" | sort -u)
  version=$(nixq eval --raw "$root#$P.envtorch-server.version" || echo '?')
  installables=()
  for c in "${crates[@]}"; do installables+=("$root#$P.$c"); done
  for c in clippy nextest rustdoc doctest; do installables+=("$root#checks.$system.$c"); done
  ndeps=$(nixq derivation show -r "${installables[@]}" | jq -r 'keys[]' | grep -c -- "-deps-$version\.drv\$" || true)
  if [ "$(wc -l <<<"$distinct")" = 1 ] && [[ $distinct == /nix/store/*-deps-*.drv ]] && [ "$ndeps" = 1 ]; then
    ok "${#crates[@]} crate packages and clippy/nextest/rustdoc/doctest share one deps derivation ($(basename "$distinct"))"
  else
    bad "crates do not share one buildDepsOnly: cargoArtifacts = $(tr '\n' ' ' <<<"$distinct"); $ndeps *-deps-* derivations in the closure"
  fi
else
  bad "crate packages do not evaluate"
  crates=()
fi

# c. Editing one env crate changes only that crate's derivation.
copy=$tmp/copy
mkdir -p "$copy"
(cd "$root" && git ls-files -z --cached | while IFS= read -r -d '' f; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  mkdir -p "$copy/$(dirname "$f")" && cp -P "$f" "$copy/$f"
done)
git -C "$copy" init -q
git -C "$copy" add -A
git -C "$copy" -c user.name=eval-offline -c user.email=eval-offline@localhost commit -qm copy
snapshot() { # -> JSON of crate drvPaths plus the deps derivation
  local pk deps
  pk=$(crate_pkgs "$copy") || return 1
  deps=$(nixq eval --raw "$copy#$P.envtorch-server.cargoArtifacts.drvPath") || return 1
  jq --arg d "$deps" '. + {"(buildDepsOnly)": $d}' <<<"$pk"
}
if before=$(snapshot); then
  for e in "${envs[@]}"; do
    dir=$(nixq eval --raw --file "$copy/nix/envs.nix" --apply "es: (builtins.head (builtins.filter (x: x.name == \"$e\") es)).dir")
    rs=$(cd "$copy" && git ls-files -- "$dir" | grep '\.rs$' | head -n1 || true)
    if [ -z "$rs" ]; then
      bad "$e: no tracked .rs file under $dir to edit"
      continue
    fi
    cp "$copy/$rs" "$tmp/orig.rs"
    printf '\n// eval-offline: edit\n' >>"$copy/$rs"
    if [ "$(jq -r --arg c "$e-bin" '.[$c]' <<<"$before")" = error ]; then
      bad "$e-bin does not evaluate: cannot check edit isolation"
    elif after=$(snapshot); then
      changed=$(jq -rn --argjson a "$before" --argjson b "$after" '[$a | keys[] | select($a[.] != $b[.])] | join(" ")')
      if [ "$changed" = "$e-bin" ]; then
        ok "editing $rs changes only the $e-bin crate derivation (deps and the other crates unchanged)"
      else
        bad "editing $rs changed: ${changed:-nothing} (expected only $e-bin)"
      fi
    else
      bad "$e: evaluation failed after editing $rs"
    fi
    cp "$tmp/orig.rs" "$copy/$rs"
  done
else
  bad "crate packages do not evaluate in the scratch copy"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
