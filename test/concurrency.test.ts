// Asynchronous calls against hostile timing: buffers detached, transferred or resized
// while a call runs, shared memory, hundreds of overlapping calls, leaks.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends } from '../lib';
import { childJson, rng } from './helpers';

const native = backends().cpu.available;
const [B, H, S, D] = [1, 4, 300, 32];
const n = B * H * S * D;

function data(seed: number, buffer?: ArrayBufferLike): Float32Array {
  const random = rng(seed);
  const a = buffer ? new Float32Array(buffer) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = random() - 0.5;
  return a;
}
const t = (d: Float32Array) => ({ data: d, shape: [B, H, S, D] });

describe.runIf(native)('attentionAsync with buffers detached or resized mid-call', () => {
  const [q, k, v] = [data(1), data(2), data(3)];
  const expected = attention(t(q), t(k), t(v), { causal: true, backend: 'cpu' }).data;

  it('inputs transferred away right after the call still give the right result', async () => {
    const [q2, k2, v2] = [q.slice(), k.slice(), v.slice()];
    const pending = attentionAsync(t(q2), t(k2), t(v2), { causal: true, backend: 'cpu' });
    for (const a of [q2, k2, v2]) structuredClone(a.buffer, { transfer: [a.buffer] });
    expect(q2.length).toBe(0); // detached
    expect((await pending).data).toEqual(expected);
  });

  it('inputs posted to a worker that drops them still give the right result', async () => {
    const k2 = k.slice();
    const worker = new Worker('require("node:worker_threads").parentPort.once("message", () => process.exit(0))', {
      eval: true,
    });
    const pending = attentionAsync(t(q), t(k2), t(v), { causal: true, backend: 'cpu' });
    worker.postMessage(k2.buffer, [k2.buffer]);
    await new Promise((resolve) => worker.once('exit', resolve));
    expect((await pending).data).toEqual(expected);
  });

  it('an out buffer detached mid-call rejects with a clear error', async () => {
    const out = { data: new Float32Array(n), shape: [B, H, S, D] };
    const pending = attentionAsync(t(q), t(k), t(v), { causal: true, backend: 'cpu', out });
    structuredClone(out.data.buffer, { transfer: [out.data.buffer] });
    await expect(pending).rejects.toThrow(/output buffer was detached or resized while attentionAsync ran/);
  });

  it('a resizable input shrunk mid-call still gives the right result', async () => {
    const buffer = new ArrayBuffer(n * 4, { maxByteLength: n * 8 });
    const k2 = data(2, buffer);
    const pending = attentionAsync(t(q), t(k2), t(v), { causal: true, backend: 'cpu' });
    buffer.resize(16);
    expect((await pending).data).toEqual(expected);
  });

  it('a detached input is rejected up front', async () => {
    const k2 = k.slice();
    structuredClone(k2.buffer, { transfer: [k2.buffer] });
    expect(() => attention(t(q), t(k2), t(v), { backend: 'cpu' })).toThrow(RangeError);
    await expect(attentionAsync(t(q), t(k2), t(v), { backend: 'cpu' })).rejects.toThrow(RangeError);
  });
});

describe.runIf(native)('SharedArrayBuffer memory is used in place', () => {
  it('sync and async calls on shared inputs and out match ordinary buffers', async () => {
    const [q, k, v] = [1, 2, 3].map((seed) => data(seed, new SharedArrayBuffer(n * 4)));
    const expected = attention(t(q.slice()), t(k.slice()), t(v.slice()), { backend: 'cpu' }).data;
    expect(attention(t(q), t(k), t(v), { backend: 'cpu' }).data).toEqual(expected);
    const out = { data: new Float32Array(new SharedArrayBuffer(n * 4)), shape: [B, H, S, D] };
    const result = await attentionAsync(t(q), t(k), t(v), { backend: 'cpu', out });
    expect(result.data).toBe(out.data);
    expect(out.data).toEqual(expected);
  });
});

describe.runIf(native)('many calls', () => {
  it('hundreds of overlapping async calls of different shapes all resolve correctly', async () => {
    const random = rng(9);
    const calls = Array.from({ length: 300 }, (_, i) => {
      const Sq = 1 + ((i * 37) % 90);
      const Skv = 1 + ((i * 53) % 400);
      const mk = (S2: number) => ({
        data: Float32Array.from({ length: 2 * S2 * 16 }, () => random() - 0.5),
        shape: [1, 2, S2, 16],
      });
      const [q, k, v] = [mk(Sq), mk(Skv), mk(Skv)];
      const options = { causal: i % 2 === 0 ? ('lower-right' as const) : false, backend: 'cpu' as const };
      return { expected: attention(q, k, v, options).data, pending: attentionAsync(q, k, v, options) };
    });
    for (const c of calls) expect((await c.pending).data).toEqual(c.expected);
  });

  // Sanitizer runs (QKV_SANITIZED) are too slow for this, and ASan's quarantine grows RSS by design.
  it.skipIf(process.env.QKV_SANITIZED)('repeated calls do not grow memory', async () => {
    const [q, k, v] = [data(1), data(2), data(3)];
    const run = async (count: number) => {
      for (let i = 0; i < count; i++) {
        attention(t(q), t(k), t(v), { backend: 'cpu' });
        await attentionAsync(t(q), t(k), t(v), { backend: 'cpu', returnLse: true });
      }
    };
    await run(200); // warm up: arenas, pool threads, JIT
    const before = process.memoryUsage().rss;
    await run(1500); // each call copies ~460 KB of inputs: a leak would show as hundreds of MB
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    expect(grown).toBeLessThan(48);
  });
});

describe.runIf(native && process.platform === 'linux')('threads follow the CPUs the process may use', () => {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const { join } = require('node:path') as typeof import('node:path');
  const cjs = JSON.stringify(join(__dirname, '..', 'dist', 'cjs', 'index.js'));

  it.runIf(spawnSync('taskset', ['-c', '0', 'true']).status === 0)('the default honours the affinity mask (taskset)', () => {
    const r = spawnSync('taskset', ['-c', '0', process.execPath, '-e', `console.log(require(${cjs}).backends().cpu.capabilities.threads)`], {
      encoding: 'utf8',
      env: { ...process.env, QKV_THREADS: '' },
    });
    expect(r.stdout.trim()).toBe('1');
  });

  it('threads: 1024 does not leave hundreds of OS threads behind', () => {
    const script = `
      const fs = require('node:fs');
      const threads = () => fs.readdirSync('/proc/self/task').length;
      const x = { data: Float32Array.from({ length: 8 * 256 * 32 }, (_, i) => Math.sin(i)), shape: [1, 8, 256, 32] };
      qkv.attention(x, x, x, { backend: 'cpu' });
      const before = threads();
      qkv.attention(x, x, x, { backend: 'cpu', threads: 1024 });
      console.log(JSON.stringify({ before, after: threads(), cpus: qkv.backends().cpu.capabilities.threads }));
    `;
    const { before, after, cpus } = childJson(script, { QKV_THREADS: '' });
    expect(after - before).toBeLessThanOrEqual(cpus);
  });
});
