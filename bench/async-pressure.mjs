// Many pending attentionAsync calls on ordinary (non-shared) buffers: how much memory they
// hold, how long queueing them blocks the event loop, and whether every result is right.
// Usage: node bench/async-pressure.mjs [calls=5000] [KiB per input=384]
// (QKV_ASYNC_MEMORY_MB sets the budget for the copies of calls in flight; default 64.)
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { attention, attentionAsync } from '../dist/esm/index.mjs';

const calls = Number(process.argv[2] ?? 5000);
const kib = Number(process.argv[3] ?? 384);
const D = 64;
const S = Math.max(1, Math.floor((kib * 1024) / 4 / D / 4));
const shape = [1, 4, S, D];
const n = 4 * S * D;
const make = (seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.01 + seed));
const inputs = [make(1), make(2), make(3)];
const expected = attention(...inputs.map((data) => ({ data, shape }))).data;

const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
let peak = process.memoryUsage().rss;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
const base = process.memoryUsage().rss;
const t0 = performance.now();
const pending = [];
let queueing = 0;
// Calls arrive in bursts of 100 per event-loop turn, as requests to a server would; the
// same ordinary buffers every time, so what the calls hold beyond them is qkv's doing.
for (let i = 0; i < calls; i += 100) {
  const t = performance.now();
  for (let j = i; j < Math.min(calls, i + 100); j++) pending.push(attentionAsync(...inputs.map((data) => ({ data, shape }))));
  queueing += performance.now() - t;
  await new Promise((resolve) => setImmediate(resolve));
}
const queued = queueing;
const results = await Promise.all(pending);
const total = performance.now() - t0;
clearInterval(sampler);
delay.disable();
const wrong = results.filter((r) => r.data.some((x, i) => x !== expected[i])).length;
console.log(JSON.stringify({
  calls, inputKiB: (n * 4) / 1024, budgetMB: Number(process.env.QKV_ASYNC_MEMORY_MB ?? 64),
  queueMsPerCall: +(queued / calls).toFixed(3), totalMs: +total.toFixed(0),
  eventLoopDelayMs: { p50: +(delay.percentile(50) / 1e6).toFixed(1), p99: +(delay.percentile(99) / 1e6).toFixed(1), max: +(delay.max / 1e6).toFixed(1) },
  peakRssGrowthMB: +((peak - base) / 2 ** 20).toFixed(0), wrong,
}));
