// KVCache: incremental decoding must equal attention over the whole sequence.
import { describe, expect, it } from 'vitest';
import { attention, backends, KVCache, type Tensor } from '../lib';
import { asFloat, relativeL2, rng, TOLERANCE } from './helpers';
import { fromFloat } from '../lib/half';

const [B, Hq, Hkv, D, N] = [2, 4, 2, 16, 60];

function sequence(seed: number) {
  const random = rng(seed);
  const make = (H: number) => Float32Array.from({ length: B * H * N * D }, () => random() - 0.5);
  return { q: make(Hq), k: make(Hkv), v: make(Hkv) };
}

/** Tokens [t0, t1) of a [B, H, N, D] sequence as a strided view (no copy). */
function tokens(data: Float32Array, H: number, t0: number, t1: number): Tensor<Float32Array> {
  return { data: data.subarray(t0 * D), dtype: 'float32', shape: [B, H, t1 - t0, D], strides: [H * N * D, N * D, D, 1] };
}

/** Rows [t0, t1) of a full [B, Hq, N, D] output, as a dense array in [B, Hq, t1 - t0, D] order. */
function rows(full: Float32Array, t0: number, t1: number): Float32Array {
  const out = new Float32Array(B * Hq * (t1 - t0) * D);
  let o = 0;
  for (let bh = 0; bh < B * Hq; bh++)
    for (let t = t0; t < t1; t++) for (let d = 0; d < D; d++) out[o++] = full[(bh * N + t) * D + d];
  return out;
}

const CHUNKS = [7, 1, 1, 1, 5, 1, 1, 13, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];

describe.each(['cpu', 'js'] as const)('KVCache, backend %s', (backend) => {
  const run = backend === 'js' || backends().cpu.available;

  it.runIf(run)('prefill then token-by-token decode equals full causal attention', () => {
    const { q, k, v } = sequence(1);
    const full = attention(tokens(q, Hq, 0, N), tokens(k, Hkv, 0, N), tokens(v, Hkv, 0, N), { causal: true, backend });
    const cache = new KVCache({ batch: B, heads: Hkv, headDim: D, capacity: N });
    let t = 0;
    for (const chunk of CHUNKS) {
      if (t + chunk > N) break;
      const out = cache.attend(tokens(q, Hq, t, t + chunk), tokens(k, Hkv, t, t + chunk), tokens(v, Hkv, t, t + chunk), { backend }) as Tensor;
      t += chunk;
      expect(cache.length).toBe(t);
      expect(relativeL2(out.data as Float32Array, rows(full.data, t - chunk, t))).toBeLessThanOrEqual(TOLERANCE.float32);
    }
    expect(t).toBeGreaterThan(50);
  });

  it.runIf(run)('a sliding window evicts old tokens and still equals full windowed attention', () => {
    const { q, k, v } = sequence(2);
    const window = 9;
    const full = attention(tokens(q, Hq, 0, N), tokens(k, Hkv, 0, N), tokens(v, Hkv, 0, N), {
      causal: true,
      window: { left: window },
      backend,
    });
    const cache = new KVCache({ batch: B, heads: Hkv, headDim: D, capacity: 16, window });
    const keyData = cache.keyData;
    let t = 0;
    for (const chunk of [5, 4, 1, 6, 1, 1, 7, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 1, 1, 1, 1, 1]) {
      if (t + chunk > N) break;
      const out = cache.attend(tokens(q, Hq, t, t + chunk), tokens(k, Hkv, t, t + chunk), tokens(v, Hkv, t, t + chunk), { backend }) as Tensor;
      t += chunk;
      expect(cache.length).toBeLessThanOrEqual(16);
      expect(cache.position).toBe(t);
      expect(relativeL2(out.data as Float32Array, rows(full.data, t - chunk, t))).toBeLessThanOrEqual(TOLERANCE.float32);
    }
    expect(t).toBeGreaterThan(45);
    expect(cache.keys().data).toBe(keyData); // never reallocated
  });
});

describe('KVCache API', () => {
  it('is backed by a SharedArrayBuffer by default and attends asynchronously in place', async () => {
    const { q, k, v } = sequence(3);
    const cache = new KVCache({ batch: B, heads: Hkv, headDim: D, capacity: N });
    expect(cache.keyData.buffer).toBeInstanceOf(SharedArrayBuffer);
    cache.append(tokens(k, Hkv, 0, 20), tokens(v, Hkv, 0, 20));
    const sync = attention(tokens(q, Hq, 20, 21), cache.keys(), cache.values(), { causal: 'lower-right' });
    const asyncOut = (await cache.attendAsync(tokens(q, Hq, 20, 21), tokens(k, Hkv, 20, 21), tokens(v, Hkv, 20, 21))) as Tensor;
    expect(cache.length).toBe(21);
    expect(asyncOut.shape).toEqual([B, Hq, 1, D]);
    expect(Array.from(asyncOut.data)).not.toEqual(Array.from(sync.data)); // the new token changed the result
    const again = attention(tokens(q, Hq, 20, 21), cache.keys(), cache.values(), { causal: 'lower-right' });
    expect(asyncOut.data).toEqual(again.data);
    expect(new KVCache({ batch: 1, heads: 1, headDim: 4, capacity: 4, shared: false }).keyData.buffer).toBeInstanceOf(ArrayBuffer);
  });

  it('holds float16 and bfloat16', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const { q, k, v } = sequence(4);
      const half = (x: Float32Array) => Uint16Array.from(x, fromFloat[dtype]);
      const [qh, kh, vh] = [half(q), half(k), half(v)];
      const view = (data: Uint16Array, H: number, t0: number, t1: number) => ({
        data: data.subarray(t0 * D),
        dtype,
        shape: [B, H, t1 - t0, D],
        strides: [H * N * D, N * D, D, 1],
      });
      const full = attention(view(qh, Hq, 0, N), view(kh, Hkv, 0, N), view(vh, Hkv, 0, N), { causal: true });
      const cache = new KVCache({ batch: B, heads: Hkv, headDim: D, capacity: N, dtype });
      cache.append(view(kh, Hkv, 0, N - 1), view(vh, Hkv, 0, N - 1));
      const last = cache.attend(view(qh, Hq, N - 1, N), view(kh, Hkv, N - 1, N), view(vh, Hkv, N - 1, N)) as Tensor;
      const expected = rows(asFloat(full).data, N - 1, N);
      expect(relativeL2(asFloat(last).data, expected)).toBeLessThanOrEqual(TOLERANCE[dtype]);
    }
  });

  it('rejects what it cannot hold, naming the problem', () => {
    const cache = new KVCache({ batch: 1, heads: 2, headDim: 4, capacity: 8 });
    const t = (T: number, dim = 4) => ({ data: new Float32Array(2 * T * dim), shape: [1, 2, T, dim] });
    expect(() => cache.append(t(3, 5), t(3))).toThrow(/k must be \[1, 2, T, 4\], got \[1, 2, 3, 5\]/);
    expect(() => cache.append(t(3), t(2))).toThrow(/different token counts/);
    expect(() => cache.append({ data: new Uint16Array(24), shape: [1, 2, 3, 4], dtype: 'float16' }, t(3))).toThrow(TypeError);
    cache.append(t(8), t(8));
    expect(() => cache.append(t(1), t(1))).toThrow(/exceed the capacity \(8, 8 stored\)/);
    const windowed = new KVCache({ batch: 1, heads: 2, headDim: 4, capacity: 8, window: 4 });
    expect(() => windowed.append(t(5), t(5))).not.toThrow();
    expect(() => windowed.append(t(5), t(5))).toThrow(/do not fit beside the window of 4/);
    expect(() => new KVCache({ batch: 1, heads: 2, headDim: 4, capacity: 4, window: 4 })).toThrow(/must exceed window/);
    expect(() => new KVCache({ batch: 0, heads: 2, headDim: 4, capacity: 4 })).toThrow(/batch must be an integer >= 1/);
    cache.reset();
    expect(cache.length).toBe(0);
  });
});
