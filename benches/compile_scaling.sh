#!/usr/bin/env bash
# Compile time and memory as functions of instance count: the implicit
# benchmark cloth (benches/scenes/cloth64_implicit.joule) at N x N particles
# for each N given (default 16 32 64 128), one row each: N, free DOFs,
# spring instances, the compile passes' median times (ms) and the process's
# peak memory (MiB), from `joule bench --json` (one environment, ten steps).
# Usage: benches/compile_scaling.sh [JOULE] [N ...]   (docs/performance.md)
set -euo pipefail
cd "$(dirname "$0")/.."
joule=${1:-target/release/joule}
shift || true
sizes=${*:-16 32 64 128}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| N | DOFs | springs | parse | resolve | ir | diff | codegen | total (ms) | peak MiB |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for n in $sizes; do
    scene="$tmp/cloth$n.joule"
    sed "s/^const N = 64\$/const N = $n/" benches/scenes/cloth64_implicit.joule >"$scene"
    "$joule" bench "$scene" --batch 1 --threads 1 --steps 10 --horizon 0 --json |
        python3 -c '
import json, sys
n = int(sys.argv[1])
b = json.load(sys.stdin)
c = b["compile_ms"]
springs = 2 * n * (n - 1) + 2 * (n - 1) ** 2
cells = [n, b["dofs"], springs] + ["%.1f" % c[k] for k in ("parse", "resolve", "ir", "diff", "codegen", "total")]
cells.append("%.0f" % (b["peak_rss_bytes"] / 2**20))
print("| " + " | ".join(str(x) for x in cells) + " |")
' "$n"
done
