#!/usr/bin/env bash
# Bulk-replays a DLQ into a stream: the seed's manual procedure, now done by
# dlq-tool (each entry moved atomically, batches pipelined, never trimmed).
#
#   scripts/dlq-replay.sh <dlq> <target-stream> [--batch N] [other `dlq-tool replay` options]
#   scripts/dlq-replay.sh jobs:dlq jobs:work --batch 50
#
# Same as `dlq-tool replay <dlq> --all --to <target> …`; exit codes are dlq-tool's
# (0 done, 1 partly done, 2 bad input with nothing changed, 3 Redis unreachable).
# The binary: $DLQ_TOOL, else the newer of target/release and target/debug, else PATH.
set -euo pipefail

if [[ $# -lt 2 || $1 == -* || $2 == -* ]]; then
    echo "usage: $0 <dlq> <target-stream> [--batch N] [dlq-tool replay options]" >&2
    exit 2
fi
dlq=$1
target=$2
shift 2

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
release=$target_dir/release/dlq-tool
debug=$target_dir/debug/dlq-tool
if [[ -n ${DLQ_TOOL:-} ]]; then
    bin=$DLQ_TOOL
elif [[ -x $release && ( ! -x $debug || $release -nt $debug ) ]]; then
    bin=$release
elif [[ -x $debug ]]; then
    bin=$debug
elif command -v dlq-tool >/dev/null 2>&1; then
    bin=$(command -v dlq-tool)
else
    echo "dlq-tool not found: build it with \`cargo build --release -p dlq-tool\` or put it on PATH" >&2
    exit 2
fi

# dlq-tool reads config/ from the current directory, like the other binaries;
# run from the workspace when the caller's directory has none.
if [[ ! -f config/default.toml ]]; then
    cd "$root"
fi
exec "$bin" replay "$dlq" --all --to "$target" "$@"
