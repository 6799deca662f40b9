// attentionAsync against aliasing arguments and against its environment going away:
// every pair of inputs sharing memory (same start with different lengths, partial overlap,
// identical arrays) gives the sync result bitwise; terminating a Worker with calls in flight
// ends that worker only.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends } from '../lib';
import { encodeCall } from '../lib/backends/native';
import type { AttentionCall } from '../lib/backends/types';
import { childJson, rng } from './helpers';

const native = backends().cpu.available;

type Arg = 'q' | 'k' | 'v' | 'mask' | 'keyLengths' | 'alibiSlopes';
const ARGS: Arg[] = ['q', 'k', 'v', 'mask', 'keyLengths', 'alibiSlopes'];
type Relation = 'same start, different lengths' | 'partial overlap' | 'identical';
const RELATIONS: Relation[] = ['same start, different lengths', 'partial overlap', 'identical'];

function aliasCase(size: 'small' | 'large', x: Arg, y: Arg, relation: Relation) {
  const [B, H, Sq, Skv, D] = size === 'small' ? [2, 2, 5, 7, 4] : [1, 4, 150, 300, 32];
  const need: Record<Arg, number> = {
    q: B * H * Sq * D,
    k: B * H * Skv * D,
    v: B * H * Skv * D,
    mask: B * Sq * Skv,
    keyLengths: B,
    alibiSlopes: H,
  };
  // Each argument gets its own stretch of one buffer, except x and y, which share memory.
  const offset = {} as Record<Arg, number>;
  const length = {} as Record<Arg, number>;
  let end = 0;
  for (const a of ARGS) {
    if (a === y) continue;
    offset[a] = end;
    length[a] = need[a] + 3;
    end += length[a] + 5;
  }
  const both = Math.max(need[x], need[y]) + 3;
  if (relation === 'identical') {
    length[x] = length[y] = both;
    offset[y] = offset[x];
  } else if (relation === 'same start, different lengths') {
    length[x] = need[x];
    length[y] = both + 11;
    offset[y] = offset[x];
  } else {
    length[x] = both;
    length[y] = both;
    offset[y] = offset[x] + Math.floor(both / 2);
  }
  // x moved to the end so that y may extend past its old stretch.
  const xEnd = offset[x] + Math.max(length[x], offset[y] - offset[x] + length[y]);
  if (xEnd > end) end = xEnd;
  const buffer = new ArrayBuffer((end + 16) * 4);
  const floats = new Float32Array(buffer);
  const random = rng(size.length * 100 + ARGS.indexOf(x) * 10 + ARGS.indexOf(y));
  for (let i = 0; i < floats.length; i++) floats[i] = random() - 0.5;
  // Key lengths are integers; where they overlap floats, those floats are tiny denormals.
  const lengths = new Int32Array(buffer, offset.keyLengths * 4, length.keyLengths);
  for (let b = 0; b < B; b++) lengths[b] = 1 + ((b * 5 + 3) % Skv);
  const f = (a: Arg) => new Float32Array(buffer, offset[a] * 4, length[a]);
  const call = {
    q: { data: f('q'), shape: [B, H, Sq, D] },
    k: { data: f('k'), shape: [B, H, Skv, D] },
    v: { data: f('v'), shape: [B, H, Skv, D] },
    options: {
      mask: { data: f('mask'), shape: [B, 1, Sq, Skv] },
      keyLengths: lengths.subarray(0, B),
      alibiSlopes: f('alibiSlopes').subarray(0, H),
      returnLse: true as const,
      backend: 'cpu' as const,
    },
  };
  return call;
}

describe.runIf(native)('attentionAsync with arguments that share memory equals attention bitwise', () => {
  for (const size of ['small', 'large'] as const) {
    for (let i = 0; i < ARGS.length; i++) {
      for (let j = i + 1; j < ARGS.length; j++) {
        const [x, y] = [ARGS[i], ARGS[j]];
        for (const relation of RELATIONS) {
          it(`${size}: ${x} and ${y}, ${relation}`, async () => {
            const { q, k, v, options } = aliasCase(size, x, y, relation);
            const sync = attention(q, k, v, options);
            const async = await attentionAsync(q, k, v, options);
            expect(Buffer.from(async.output.data.buffer).equals(Buffer.from(sync.output.data.buffer))).toBe(true);
            expect(Buffer.from(async.lse.data.buffer).equals(Buffer.from(sync.lse.data.buffer))).toBe(true);
            expect(sync.output.data.some((value) => value !== 0)).toBe(true);
          });
        }
      }
    }
  }

  it('q a prefix of k (the reported case), large and small', async () => {
    for (const [S, D] of [[64, 8], [1024, 64]]) {
      const big = Float32Array.from({ length: S * D * 2 }, (_, i) => Math.sin(i));
      const q = { data: big.subarray(0, D), shape: [1, 1, 1, D] };
      const k = { data: big, shape: [1, 1, S, D] };
      const v = { data: big.subarray(S * D), shape: [1, 1, S, D] };
      const sync = attention(q, k, v, { backend: 'cpu' });
      const async = await attentionAsync(q, k, v, { backend: 'cpu' });
      expect(async.data).toEqual(sync.data);
    }
  });
});

// The worker calls the binding directly with a header encoded here (the worker cannot load
// TypeScript); the calls are the ones attentionAsync makes.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { path, header, shape, kind, calls } = workerData; // kind 'cuda': ordinary buffers, backend 'cuda'
const module = { exports: {} };
process.dlopen(module, path);
const addon = module.exports;
const n = shape.reduce((a, b) => a * b, 1);
const array = (shared) => {
  const a = shared ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i);
  return a;
};
const shared = kind === 'shared';
for (let i = 0; i < calls; i++) {
  const lse = kind === 'lse' || kind === 'shared' ? (shared ? new Float32Array(new SharedArrayBuffer(shape[0] * shape[1] * shape[2] * 4)) : new Float32Array(shape[0] * shape[1] * shape[2])) : null;
  addon.attentionAsync(new Float64Array(header), array(shared), array(shared), array(shared), array(shared), lse, null, null, null)
    .then(() => parentPort.postMessage('settled'), (e) => parentPort.postMessage('error: ' + e.message));
}
parentPort.postMessage('queued');
`;

describe.runIf(native)('Worker.terminate() with attentionAsync calls in flight', () => {
  /** The binding's header for q = k = v = out [1, H, S, D] contiguous, with lse; device -1: the CPU. */
  const headerFor = (shape: [number, number, number, number], device: number) => {
    const [, H, S, D] = shape;
    const view = { data: new Float32Array(0), dtype: 'float32' as const, shape, strides: [H * S * D, S * D, D, 1] as [number, number, number, number] };
    const call = {
      q: view, k: view, v: view, out: view,
      lse: { data: new Float32Array(0), dtype: 'float32', shape: [1, H, S, 1], strides: [H * S, S, 1, 1] },
      scale: 0.125, threads: 0, device, diagonalOffset: 0, windowLeft: -1, windowRight: -1,
      softcap: 0, mask: null, keyLengths: null, alibiSlopes: null,
    } as unknown as AttentionCall;
    return Array.from(encodeCall(call)[0] as Float64Array);
  };
  const path = backends().cpu.available ? (backends().cpu as { path: string }).path : '';
  // CUDA calls where this build has a device (the CPU shim in CI: kernels run slowly, so smaller).
  const kinds = ['ordinary', 'lse', 'shared', ...(backends().cuda.available ? (['cuda'] as const) : [])] as const;

  for (const kind of kinds) {
    const shape: [number, number, number, number] = kind === 'cuda' ? [1, 2, 32, 32] : [1, 4, 256, 64];
    const header = headerFor(shape, kind === 'cuda' ? 0 : -1);
    it(`ends the worker only (${kind} buffers), again and again`, async () => {
      for (let round = 0; round < (process.env.QKV_SANITIZED ? 6 : 12); round++) {
        const worker = new Worker(WORKER, { eval: true, workerData: { path, header, shape, kind, calls: 24 } });
        await new Promise((resolve) => worker.once('message', resolve));
        // Terminate at a different moment each round: before, during and after completions.
        await new Promise((resolve) => setTimeout(resolve, (round * 3) % 17));
        await worker.terminate();
      }
      // The main thread still works, synchronously and asynchronously.
      const q = { data: Float32Array.from({ length: 4 * 64 * 16 }, (_, i) => Math.cos(i)), shape: [1, 4, 64, 16] };
      const sync = attention(q, q, q, { backend: 'cpu' });
      expect((await attentionAsync(q, q, q, { backend: 'cpu' })).data).toEqual(sync.data);
    }, 60_000);
  }
});

// The budget for the copies of calls in flight is read once per process: these run in a
// child with a small one (QKV_ASYNC_MEMORY_MB=1).
describe.runIf(native)('the memory budget of pending asynchronous calls', () => {
  const child = (script: string) => childJson(script, { QKV_ASYNC_MEMORY_MB: '1' });

  it('calls beyond the budget wait their turn and all give the sync result', () => {
    const result = child(`
      const shape = [1, 2, 200, 64];
      const make = (s) => Float32Array.from({ length: 2 * 200 * 64 }, (_, i) => Math.sin(i * 0.1 + s));
      const calls = Array.from({ length: 120 }, (_, i) => [make(i), make(i + 0.5), make(i + 0.25)].map((data) => ({ data, shape })));
      const expected = calls.map((c) => qkv.attention(...c, { causal: true }).data);
      Promise.all(calls.map((c) => qkv.attentionAsync(...c, { causal: true }))).then((results) => {
        const same = results.every((r, i) => r.data.every((x, j) => x === expected[i][j]));
        console.log(JSON.stringify({ same }));
      });
    `);
    expect(result.same).toBe(true);
  });

  it('an input detached while its call waits rejects that call with a clear TypeError; the others run', () => {
    const result = child(`
      const shape = [1, 2, 1500, 64]; // 768 KB per input: one call alone fills the 1 MB budget
      const make = () => ({ data: Float32Array.from({ length: 2 * 1500 * 64 }, (_, i) => Math.cos(i)), shape });
      const first = qkv.attentionAsync(make(), make(), make());
      const k = make();
      const second = qkv.attentionAsync(make(), k, make());
      structuredClone(k.data.buffer, { transfer: [k.data.buffer] });
      Promise.allSettled([first, second]).then(([a, b]) =>
        console.log(JSON.stringify({ first: a.status, second: b.status, error: b.reason && b.reason.constructor.name + ': ' + b.reason.message })));
    `);
    expect(result.first).toBe('fulfilled');
    expect(result.second).toBe('rejected');
    expect(result.error).toMatch(/^TypeError: qkv: an input of attentionAsync was detached or resized while the call waited for its turn/);
  });
});
