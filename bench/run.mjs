// qkv's benchmarks: for each shape, qkv's native backend, the pure-JS reference backend and
// onnxruntime-node's CPU attention, side by side in one process with one thread count,
// timed by the `benchmark` package. Reports time, GFLOP/s, ratios and the fraction of the
// machine's measured FMA peak; writes bench/results/latest.json and the README table.
//
//   npm run bench                   all shapes, 2 threads (the machine's cores)
//   npm run bench -- --quick        fewer shapes, shorter runs
//   npm run bench -- --only S1024   shapes whose label contains the text
//   npm run bench -- --no-readme    leave README.md alone
// Then bench/linear.mjs: the projection GEMM against OpenBLAS.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionModel, multiHeadAttentionLayerModel, multiHeadAttentionModel } from './onnx-model.mjs';
import { fromFloat } from '../dist/cjs/half.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(import.meta.url);
const Benchmark = require('benchmark');
const qkv = require(join(root, 'dist', 'cjs', 'index.js'));
const ort = require('onnxruntime-node');

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const quick = flag('--quick');
const only = option('--only');
const threads = Number(option('--threads') ?? Math.min(2, availableParallelism()));
const maxTime = quick ? 0.5 : 2;

// --- machine limits --------------------------------------------------------------------
function machinePeak() {
  const binary = join(root, 'build', 'bench', 'machine-peak');
  mkdirSync(dirname(binary), { recursive: true });
  execFileSync('c++', ['-O3', '-march=native', '-pthread', join(here, 'machine-peak.cpp'), '-o', binary]);
  return JSON.parse(execFileSync(binary, [String(threads)], { encoding: 'utf8' }));
}

// --- shapes ----------------------------------------------------------------------------
const shapes = [];
const add = (s) => {
  const dtype = s.dtype ?? 'float32';
  const label =
    `B${s.B} H${s.Hq}${s.Hkv !== s.Hq ? `/${s.Hkv}` : ''} ` +
    (s.Sq === s.Skv ? `S${s.Sq}` : `Sq${s.Sq} Skv${s.Skv}`) +
    ` D${s.D}${s.causal ? ' causal' : ''}${dtype === 'float32' ? '' : ` ${dtype}`}`;
  if (!only || label.includes(only)) shapes.push({ ...s, dtype, label });
};
for (const S of quick ? [128, 1024] : [128, 512, 1024, 2048]) {
  for (const causal of [false, true]) add({ B: 1, Hq: 8, Hkv: 8, Sq: S, Skv: S, D: 64, causal });
}
for (const causal of [false, true]) add({ B: 1, Hq: 32, Hkv: 32, Sq: 1024, Skv: 1024, D: 128, causal });
add({ B: 1, Hq: 32, Hkv: 8, Sq: 1024, Skv: 1024, D: 128, causal: true });
for (const Skv of [1024, 8192]) add({ B: 1, Hq: 32, Hkv: 32, Sq: 1, Skv, D: 128, causal: false, decode: true });
for (const dtype of ['float16', 'bfloat16']) {
  add({ B: 1, Hq: 8, Hkv: 8, Sq: 1024, Skv: 1024, D: 64, causal: true, dtype });
  add({ B: 1, Hq: 32, Hkv: 32, Sq: 1, Skv: 8192, D: 128, causal: false, decode: true, dtype });
}
add({ B: 1, Hq: 1, Hkv: 1, Sq: 1, Skv: 1, D: 64, causal: false, tiny: true });

/** FLOPs counted as 4·B·H·Sq·Skv·D, the visible fraction only for causal. */
function flops(s) {
  let pairs = s.Sq * s.Skv;
  if (s.causal) pairs = (s.Sq * (s.Sq + 1)) / 2 + s.Sq * (s.Skv - s.Sq);
  return 4 * s.B * s.Hq * pairs * s.D;
}

function random(n, seed) {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}

// --- peers -----------------------------------------------------------------------------
async function ortSession(model) {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
}

/** The faster of ONNX Runtime's two attention ops for this shape (what a user would pick). */
async function ortPeer(s, q, k, v) {
  // ORT's CPU attention kernels are float32 (and float16 for some ops); bfloat16 has none.
  if (s.dtype === 'bfloat16') return null;
  const candidates = [];
  let attn;
  try {
    attn = await ortSession(attentionModel({ causal: s.causal, dtype: s.dtype }));
  } catch {
    return null;
  }
  const feeds = {
    Q: new ort.Tensor(s.dtype, q, [s.B, s.Hq, s.Sq, s.D]),
    K: new ort.Tensor(s.dtype, k, [s.B, s.Hkv, s.Skv, s.D]),
    V: new ort.Tensor(s.dtype, v, [s.B, s.Hkv, s.Skv, s.D]),
  };
  candidates.push({ name: 'Attention (opset 23)', session: attn, run: () => attn.run(feeds) });
  // MultiHeadAttention has no GQA, and its causal mode is upper-left only like ours here.
  if (s.Hq === s.Hkv && s.dtype === 'float32') {
    const mha = await ortSession(multiHeadAttentionModel({ heads: s.Hq, causal: s.causal }));
    const bse = (x, S) => {
      const y = new Float32Array(x.length);
      for (let h = 0; h < s.Hq; h++)
        for (let i = 0; i < S; i++) y.set(x.subarray((h * S + i) * s.D, (h * S + i + 1) * s.D), (i * s.Hq + h) * s.D);
      return y;
    };
    const E = s.Hq * s.D;
    const mfeeds = {
      query: new ort.Tensor('float32', bse(q, s.Sq), [s.B, s.Sq, E]),
      key: new ort.Tensor('float32', bse(k, s.Skv), [s.B, s.Skv, E]),
      value: new ort.Tensor('float32', bse(v, s.Skv), [s.B, s.Skv, E]),
    };
    candidates.push({ name: 'MultiHeadAttention (com.microsoft)', session: mha, run: () => mha.run(mfeeds) });
  }
  // Pick by a short timing of each.
  let best = null;
  for (const c of candidates) {
    try {
      await c.run();
    } catch {
      continue; // the op exists but has no kernel for this dtype
    }
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 200 || n < 3) {
      await c.run();
      n++;
    }
    c.ms = (performance.now() - t0) / n;
    if (!best || c.ms < best.ms) best = c;
  }
  for (const c of candidates) if (c !== best) await c.session.release();
  return best;  // null when no op could run
}

function measure(name, fn, { deferred = false, minSamples = 5, time = maxTime } = {}) {
  return new Promise((resolve) => {
    const bench = deferred
      ? new Benchmark(name, { defer: true, fn: (d) => fn().then(() => d.resolve()), minSamples, maxTime: time })
      : new Benchmark(name, { fn, minSamples, maxTime: time });
    bench.on('complete', () => {
      const sorted = [...bench.stats.sample].sort((a, b) => a - b);
      resolve({ ms: sorted[Math.floor(sorted.length / 2)] * 1e3, rme: bench.stats.rme, samples: sorted.length });
    });
    bench.run();
  });
}

// --- run -------------------------------------------------------------------------------
const info = qkv.backends();
if (!info.cpu.available) throw new Error(`native backend unavailable: ${info.cpu.reason}`);
const machine = machinePeak();
const peak = machine.fmaGflops[String(threads)];
const bandwidth = machine.triadGBps[String(threads)];
console.log(
  `qkv ${info.cpu.capabilities.isa}, ${threads} thread(s); machine: FMA peak ${peak} GFLOP/s, triad ${bandwidth} GB/s`,
);

const rows = [];
for (const s of shapes) {
  const q = random(s.B * s.Hq * s.Sq * s.D, 1);
  const k = random(s.B * s.Hkv * s.Skv * s.D, 2);
  const v = random(s.B * s.Hkv * s.Skv * s.D, 3);
  const bits = (x) => (s.dtype === 'float32' ? x : Uint16Array.from(x, fromFloat[s.dtype]));
  const t = (data, H, S) => ({ data: bits(data), shape: [s.B, H, S, s.D], dtype: s.dtype });
  const [qt, kt, vt] = [t(q, s.Hq, s.Sq), t(k, s.Hkv, s.Skv), t(v, s.Hkv, s.Skv)];
  const options = { causal: s.causal, threads };
  const outSize = s.B * s.Hq * s.Sq * s.D;
  const out = { data: s.dtype === 'float32' ? new Float32Array(outSize) : new Uint16Array(outSize), shape: [s.B, s.Hq, s.Sq, s.D], dtype: s.dtype };
  const f = flops(s);
  const row = { shape: s.label, flops: f, peers: {} };

  // Options objects are built once: a spread per call would be timed too (~3 µs here).
  const nativeOptions = { ...options, out };
  const jsOptions = { ...options, out, backend: 'js' };
  row.peers.qkv = await measure('qkv', () => qkv.attention(qt, kt, vt, nativeOptions));
  if (f <= 2.2e9) {
    // The pure-JS backend: only where one call takes seconds at most.
    row.peers.js = await measure('js', () => qkv.attention(qt, kt, vt, jsOptions), {
      minSamples: 2,
      time: f > 5e8 ? 0.1 : maxTime,
    });
  }
  const peer = await ortPeer(s, qt.data, kt.data, vt.data);
  if (peer) {
    row.ortOp = peer.name;
    row.peers.onnxruntime = await measure('onnxruntime', peer.run, { deferred: true });
    await peer.session.release(); // its spinning threads must not linger into the next shape
  }

  for (const p of Object.values(row.peers)) p.gflops = f / (p.ms * 1e6);
  row.peakFraction = row.peers.qkv.gflops / peak;
  if (s.decode) {
    const bytes = (s.dtype === 'float32' ? 4 : 2) * s.B * s.Hkv * s.Skv * 2 * s.D; // K and V read once
    row.bandwidthFraction = bytes / (row.peers.qkv.ms * 1e6) / bandwidth;
  }
  row.vsJs = row.peers.js ? row.peers.js.ms / row.peers.qkv.ms : null;
  row.vsOrt = row.peers.onnxruntime ? row.peers.onnxruntime.ms / row.peers.qkv.ms : null;
  rows.push(row);
  const fmt = (p) => (p ? `${p.ms.toFixed(3)} ms (${p.gflops.toFixed(1)} GF/s)` : '—');
  console.log(
    `${s.label.padEnd(28)} qkv ${fmt(row.peers.qkv)} | js ${fmt(row.peers.js)} | ort ${fmt(row.peers.onnxruntime)} ` +
      `| ×js ${row.vsJs ? row.vsJs.toFixed(0) : '—'} ×ort ${row.vsOrt ? row.vsOrt.toFixed(2) : '—'} | ${(100 * row.peakFraction).toFixed(0)}% peak` +
      (row.bandwidthFraction ? ` ${(100 * row.bandwidthFraction).toFixed(0)}% bw` : ''),
  );
}

// --- whole attention layers: MultiHeadAttention (projections + attention) ----------------
// qkv's MultiHeadAttention.forward against the same layer in onnxruntime-node (MatMul/Add
// projections with constant weights around com.microsoft MultiHeadAttention) and against
// qkv's pure-JS backend, self-attention on [B, S, E].
const layerShapes = [
  { B: 1, S: 128, E: 512, heads: 8, causal: true },
  { B: 1, S: 512, E: 512, heads: 8, causal: true },
  { B: 4, S: 256, E: 512, heads: 8, causal: false },
]
  .map((l) => ({ ...l, label: `MHA layer B${l.B} S${l.S} E${l.E} H${l.heads}${l.causal ? ' causal' : ''}` }))
  .filter((l) => !only || l.label.includes(only))
  .filter((l) => !quick || l.S <= 128);
const layerRows = [];
for (const l of layerShapes) {
  const { B, S, E, heads, causal } = l;
  const w = { q: random(E * E, 11), k: random(E * E, 12), v: random(E * E, 13), o: random(E * E, 14) };
  const b = { qBias: random(E, 15), kBias: random(E, 16), vBias: random(E, 17), oBias: random(E, 18) };
  for (const x of Object.values(w)) for (let i = 0; i < x.length; i++) x[i] /= Math.sqrt(E) / 2;
  const x = { data: random(B * S * E, 19), shape: [B, S, E] };
  const mha = new qkv.MultiHeadAttention({ embedDim: E, numHeads: heads, weights: { ...w, ...b } });
  const mhaJs = new qkv.MultiHeadAttention({ embedDim: E, numHeads: heads, weights: { ...w, ...b }, backend: 'js' });
  const options = { causal, threads };
  // projections 2·M·E·4E, attention 4·B·S²·E (half when causal)
  const f = 2 * B * S * E * 4 * E + (4 * B * S * S * E) / (causal ? 2 : 1);
  const row = { shape: l.label, flops: f, peers: {} };
  row.peers.qkv = await measure('qkv', () => mha.forward(x, undefined, undefined, options));
  if (f < 3e9) row.peers.js = await measure('js', () => mhaJs.forward(x, undefined, undefined, { causal }), { minSamples: 2, time: 0.1 });
  const T = (data, dims) => ({ data, dims });
  const transpose = (m) => {
    const t = new Float32Array(E * E);
    for (let r = 0; r < E; r++) for (let c = 0; c < E; c++) t[c * E + r] = m[r * E + c];
    return t;
  };
  const session = await ortSession(
    multiHeadAttentionLayerModel({
      heads,
      causal,
      weights: {
        wq: T(transpose(w.q), [E, E]), bq: T(b.qBias, [E]), wk: T(transpose(w.k), [E, E]), bk: T(b.kBias, [E]),
        wv: T(transpose(w.v), [E, E]), bv: T(b.vBias, [E]), wo: T(transpose(w.o), [E, E]), bo: T(b.oBias, [E]),
      },
    }),
  );
  const input = new ort.Tensor('float32', x.data, [B, S, E]);
  const feeds = { query: input, key: input, value: input };
  const theirs = (await session.run(feeds)).output.data;
  row.maxAbsDiff = mha.forward(x, undefined, undefined, options).data.reduce((m, v, i) => Math.max(m, Math.abs(v - theirs[i])), 0);
  row.peers.onnxruntime = await measure('onnxruntime', () => session.run(feeds), { deferred: true });
  await session.release();
  for (const p of Object.values(row.peers)) p.gflops = f / (p.ms * 1e6);
  row.vsJs = row.peers.js ? row.peers.js.ms / row.peers.qkv.ms : null;
  row.vsOrt = row.peers.onnxruntime.ms / row.peers.qkv.ms;
  layerRows.push(row);
  console.log(
    `${l.label.padEnd(34)} qkv ${row.peers.qkv.ms.toFixed(3)} ms | js ${row.peers.js ? row.peers.js.ms.toFixed(1) : '—'} ms | ` +
      `ort ${row.peers.onnxruntime.ms.toFixed(3)} ms | ×ort ${row.vsOrt.toFixed(2)} | max |qkv − ort| ${row.maxAbsDiff.toExponential(1)}`,
  );
}

// --- report ----------------------------------------------------------------------------
const result = {
  date: new Date().toISOString(),
  node: process.version,
  threads,
  isa: info.cpu.capabilities.isa,
  machine,
  onnxruntime: require('onnxruntime-node/package.json').version,
  rows,
  layerRows,
};
// Partial runs (--quick, --only) never replace the full run's results.
const partial = quick || only !== undefined;
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', partial ? 'partial.json' : 'latest.json'), JSON.stringify(result, null, 2) + '\n');

const cell = (p) => (p ? `${p.ms < 1 ? p.ms.toFixed(3) : p.ms.toFixed(1)} ms · ${p.gflops.toFixed(1)}` : '—');
const table = [
  `float32 unless the row says otherwise; ${threads} threads, ${result.isa}; median of the \`benchmark\` package's samples; GFLOP/s = 4·B·H·Sq·Skv·D ` +
    `(visible pairs only when causal). Machine: FMA peak ${peak} GFLOP/s, triad ${bandwidth} GB/s. ` +
    `onnxruntime-node ${result.onnxruntime}, the faster of its Attention / MultiHeadAttention ops. ${result.date.slice(0, 10)}.`,
  '',
  '| shape | qkv | pure JS | onnxruntime | × JS | × ORT | % FMA peak |',
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.shape} | ${cell(r.peers.qkv)} | ${cell(r.peers.js)} | ${cell(r.peers.onnxruntime)} | ` +
      `${r.vsJs ? r.vsJs.toFixed(0) : '—'} | ${r.vsOrt ? r.vsOrt.toFixed(2) : '—'} | ${(100 * r.peakFraction).toFixed(0)}%` +
      `${r.bandwidthFraction ? ` (${(100 * r.bandwidthFraction).toFixed(0)}% of triad bandwidth)` : ''} |`,
  ),
].join('\n');
const layerTable = [
  `Whole layers: \`MultiHeadAttention.forward\` (fused QKV projection, attention, output projection; bias) vs the same ` +
    `layer in onnxruntime-node (MatMul/Add with constant weights around com.microsoft MultiHeadAttention) and qkv's pure-JS ` +
    `backend; ${threads} threads; GFLOP/s = 8·B·S·E² + 4·B·S²·E (half the attention term when causal).`,
  '',
  '| layer | qkv | pure JS | onnxruntime | × JS | × ORT |',
  '|---|---|---|---|---|---|',
  ...layerRows.map(
    (r) =>
      `| ${r.shape} | ${cell(r.peers.qkv)} | ${cell(r.peers.js)} | ${cell(r.peers.onnxruntime)} | ` +
      `${r.vsJs ? r.vsJs.toFixed(0) : '—'} | ${r.vsOrt.toFixed(2)} |`,
  ),
].join('\n');
console.log(`\n${table}\n\n${layerTable}`);

const readmePath = join(root, 'README.md');
if (!flag('--no-readme') && !only && !quick && existsSync(readmePath)) {
  const readme = readFileSync(readmePath, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  if (readme.includes(start) && readme.includes(end)) {
    writeFileSync(
      readmePath,
      readme.slice(0, readme.indexOf(start) + start.length) + '\n' + table + '\n\n' + layerTable + '\n' + readme.slice(readme.indexOf(end)),
    );
    console.log('README.md benchmark table updated');
  }
}

// The projections (Linear) against OpenBLAS, same thread count.
execFileSync(process.execPath, [join(here, 'linear.mjs'), '--threads', String(threads), ...(partial || flag('--no-readme') ? ['--no-readme'] : [])], {
  stdio: 'inherit',
});
