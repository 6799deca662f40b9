#!/usr/bin/env bash
# `npm pack`, install the tarball into an empty project (its install script builds the addon),
# and run the README example there, as ESM and as CommonJS, on the native backend.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$root"
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund "./$tarball"
cp "$root/examples/quickstart.mjs" .
node quickstart.mjs
node -e "
const qkv = require('qkv');
const info = qkv.backends();
if (!info.cpu.available) throw new Error('native backend missing after install: ' + info.cpu.reason);
const t = { data: new Float32Array(2 * 3 * 4).fill(0.25), shape: [1, 2, 3, 4] };
console.log('require(qkv):', qkv.attention(t, t, t).data[0], info.cpu.capabilities);
"
echo "pack smoke test: ok"
