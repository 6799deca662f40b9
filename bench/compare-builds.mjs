// Two builds of the addon side by side in one process, interleaved: the same calls through
// each, median times and their ratio. For checking that a kernel change costs nothing.
// Usage: node bench/compare-builds.mjs path/to/old/qkv.node path/to/new/qkv.node
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { prepare } = require('../dist/cjs/attention.js');
const { encodeCall } = require('../dist/cjs/backends/native.js');
const [oldPath, newPath] = process.argv.slice(2);
const load = (path) => {
  const module = { exports: {} };
  process.dlopen(module, path);
  return module.exports;
};
const addons = { old: load(oldPath), new: load(newPath) };

const shapes = [
  { label: 'H8 S1024 D64', H: 8, S: 1024, D: 64, options: {} },
  { label: 'H8 S1024 D64 causal', H: 8, S: 1024, D: 64, options: { causal: true } },
  { label: 'H8 S1024 D64 window 256', H: 8, S: 1024, D: 64, options: { window: { left: 256, right: 0 } } },
  { label: 'H32 S1024 D128', H: 32, S: 1024, D: 128, options: {} },
  { label: 'H8 S1024 D64 bool mask', H: 8, S: 1024, D: 64, mask: true, options: {} },
  { label: 'decode H32 Skv8192 D128', H: 32, Sq: 1, S: 8192, D: 128, options: {} },
];
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
console.log('| shape | before (ms) | after (ms) | after / before |\n|---|---|---|---|');
for (const s of shapes) {
  const mk = (S) => ({ data: Float32Array.from({ length: s.H * S * s.D }, (_, i) => Math.sin(i * 0.37)), shape: [1, s.H, S, s.D] });
  const q = mk(s.Sq ?? s.S), k = mk(s.S), v = mk(s.S);
  const options = { ...s.options, backend: 'cpu', threads: 2 };
  if (s.mask) options.mask = { data: Uint8Array.from({ length: s.S * s.S }, (_, i) => (i % 7 === 0 ? 0 : 1)), shape: [s.S, s.S] };
  const { call } = prepare(q, k, v, options);
  const times = { old: [], new: [] };
  for (let rep = 0; rep < 3; rep++) for (const name of ['old', 'new']) addons[name].attention(...encodeCall(call)); // warm up
  const flops = 4 * s.H * (s.Sq ?? s.S) * s.S * s.D;
  const reps = Math.max(5, Math.min(60, Math.round(2e10 / flops)));
  for (let rep = 0; rep < reps; rep++) {
    for (const name of rep % 2 ? ['old', 'new'] : ['new', 'old']) {
      const t = performance.now();
      addons[name].attention(...encodeCall(call));
      times[name].push(performance.now() - t);
    }
  }
  const [a, b] = [median(times.old), median(times.new)];
  console.log(`| ${s.label} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(b / a).toFixed(3)} |`);
}
