// Two checkouts of qkv (library and addon each) side by side in one process, interleaved:
// the same calls through each, median times and their ratio. For checking that a change
// costs nothing even when the binding's calling convention changed between the two.
// Usage: node bench/compare-builds.mjs /path/to/old/checkout /path/to/new/checkout (each built:
// dist/ and build/Release/qkv.node; a git worktree of the older commit serves)
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const load = (root) => {
  process.env.QKV_NATIVE_PATH = join(root, 'build', 'Release', 'qkv.node');
  const qkv = require(join(root, 'dist', 'cjs', 'index.js'));
  if (!qkv.backends().cpu.available) throw new Error(`${root}: ${qkv.backends().cpu.reason}`);
  return qkv;
};
const [before, after] = process.argv.slice(2).map(load);

const shapes = [
  { label: 'H8 S1024 D64', H: 8, S: 1024, D: 64, options: {} },
  { label: 'H8 S1024 D64 causal', H: 8, S: 1024, D: 64, options: { causal: true } },
  { label: 'H8 S1024 D64 window 256', H: 8, S: 1024, D: 64, options: { window: { left: 256, right: 0 } } },
  { label: 'H32 S1024 D128', H: 32, S: 1024, D: 128, options: {} },
  { label: 'H8 S1024 D64 bool mask', H: 8, S: 1024, D: 64, mask: true, options: {} },
  { label: 'H8 S128 D64 causal', H: 8, S: 128, D: 64, options: { causal: true } },
  { label: 'decode H32 Skv8192 D128', H: 32, Sq: 1, S: 8192, D: 128, options: { causal: 'lower-right' } },
];
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
console.log('| shape | before (ms) | after (ms) | after / before |\n|---|---|---|---|');
for (const s of shapes) {
  const mk = (S) => ({ data: Float32Array.from({ length: s.H * S * s.D }, (_, i) => Math.sin(i * 0.37)), shape: [1, s.H, S, s.D] });
  const q = mk(s.Sq ?? s.S), k = mk(s.S), v = mk(s.S);
  const options = { ...s.options, backend: 'cpu', threads: 2 };
  if (s.mask) options.mask = { data: Uint8Array.from({ length: s.S * s.S }, (_, i) => (i % 7 === 0 ? 0 : 1)), shape: [s.S, s.S] };
  const out = { data: new Float32Array(s.H * (s.Sq ?? s.S) * s.D), shape: [1, s.H, s.Sq ?? s.S, s.D] };
  const runs = { before: () => before.attention(q, k, v, { ...options, out }), after: () => after.attention(q, k, v, { ...options, out }) };
  for (let rep = 0; rep < 3; rep++) for (const name of ['before', 'after']) runs[name]();
  const flops = 4 * s.H * (s.Sq ?? s.S) * s.S * s.D;
  const reps = Math.max(7, Math.min(200, Math.round(3e10 / flops)));
  const times = { before: [], after: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const name of rep % 2 ? ['before', 'after'] : ['after', 'before']) {
      const t = performance.now();
      runs[name]();
      times[name].push(performance.now() - t);
    }
  }
  const [a, b] = [median(times.before), median(times.after)];
  console.log(`| ${s.label} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(b / a).toFixed(3)} |`);
}
