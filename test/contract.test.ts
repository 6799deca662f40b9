// The API's contract under careless or hostile use: state never changes on a failed call,
// overlapping calls on one cache are refused, layers own their weights, misspelt options are
// errors everywhere, empty work gives empty results, and float32 limits are the same for
// every backend.
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends, KVCache, Linear, MultiHeadAttention, tensor } from '../lib';
import { DeviceTensor } from '../lib/device-tensor';
import { rng } from './helpers';

const BACKENDS = [
  ...(backends().cpu.available ? (['cpu'] as const) : []),
  'js' as const,
  ...(backends().cuda.available ? (['cuda'] as const) : []),
];

const random = rng(7);
const values = (n: number) => Float32Array.from({ length: n }, () => random() - 0.5);
const t4 = (shape: [number, number, number, number]) => ({ data: values(shape.reduce((a, b) => a * b, 1)), shape });

describe.each(BACKENDS)('empty work gives an empty result, backend %s', (backend) => {
  it('Sq = 0 (sync and async, with lse)', async () => {
    const q = t4([2, 2, 0, 8]), k = t4([2, 2, 5, 8]), v = t4([2, 2, 5, 8]);
    for (const result of [attention(q, k, v, { backend, returnLse: true }), await attentionAsync(q, k, v, { backend, returnLse: true })]) {
      expect(result.output.shape).toEqual([2, 2, 0, 8]);
      expect(result.output.data.length).toBe(0);
      expect(result.lse.shape).toEqual([2, 2, 0]);
    }
  });

  it('Skv = 0: every row is fully masked (zeros, lse -Infinity)', () => {
    const q = t4([1, 2, 3, 8]), k = t4([1, 2, 0, 8]), v = t4([1, 2, 0, 8]);
    const { output, lse } = attention(q, k, v, { backend, returnLse: true });
    expect(Array.from(output.data).every((x) => x === 0)).toBe(true);
    expect(Array.from(lse.data).every((x) => x === -Infinity)).toBe(true);
  });

  it('B = 0', () => {
    const q = t4([0, 2, 3, 8]);
    expect(attention(q, t4([0, 2, 4, 8]), t4([0, 2, 4, 8]), { backend }).data.length).toBe(0);
  });
});

describe.each(BACKENDS.filter((b) => b !== 'cuda'))('KVCache, backend %s', (backend) => {
  it('a step of 0 tokens attends nothing and changes nothing', () => {
    const cache = new KVCache({ batch: 1, heads: 2, headDim: 8, capacity: 16 });
    cache.attend(t4([1, 2, 3, 8]), t4([1, 2, 3, 8]), t4([1, 2, 3, 8]), { backend });
    const out = cache.attend(t4([1, 2, 0, 8]), t4([1, 2, 0, 8]), t4([1, 2, 0, 8]), { backend });
    expect((out as { data: Float32Array }).data.length).toBe(0);
    expect(cache.length).toBe(3);
  });

  it('a call that fails validation leaves the cache as it was (attend and attendAsync)', async () => {
    const cache = new KVCache({ batch: 1, heads: 2, headDim: 8, capacity: 16 });
    const k = t4([1, 2, 1, 8]), v = t4([1, 2, 1, 8]);
    const badQ = t4([1, 3, 1, 8]); // 3 query heads over 2 kv heads
    expect(() => cache.attend(badQ, k, v, { backend })).toThrow(/multiple of key\/value heads/);
    expect(cache.length).toBe(0);
    await expect(cache.attendAsync(badQ, k, v, { backend })).rejects.toThrow(RangeError);
    expect(cache.length).toBe(0);
    expect(() => cache.attend(t4([1, 2, 1, 8]), k, v, { backend, casual: true } as never)).toThrow(/did you mean 'causal'/);
    expect(() => cache.attend(t4([1, 2, 1, 8]), k, v, { backend, causal: false })).toThrow(/always 'lower-right'/);
    expect(cache.length).toBe(0);
    // The retry appends the token once.
    cache.attend(t4([1, 2, 1, 8]), k, v, { backend });
    expect(cache.length).toBe(1);
    expect(cache.position).toBe(1);
  });

  it('a failed append with a window does not evict', () => {
    const cache = new KVCache({ batch: 1, heads: 1, headDim: 4, capacity: 6, window: 3 });
    for (let i = 0; i < 6; i++) cache.append(t4([1, 1, 1, 4]), t4([1, 1, 1, 4]));
    const before = Array.from(cache.keys().data.subarray(0, 24));
    expect(() => cache.append(t4([1, 1, 1, 4]), t4([1, 1, 2, 4]))).toThrow(/different token counts/);
    expect(cache.length).toBe(6);
    expect(Array.from(cache.keys().data.subarray(0, 24))).toEqual(before);
  });
});

describe.runIf(backends().cpu.available)('KVCache with calls in flight', () => {
  it('refuses to change while an attendAsync call reads it, and works again once it settled', async () => {
    for (const window of [undefined, 4]) {
      const cache = new KVCache({ batch: 1, heads: 2, headDim: 8, capacity: 12, ...(window ? { window } : {}) });
      const step = () => [t4([1, 2, 1, 8]), t4([1, 2, 1, 8]), t4([1, 2, 1, 8])] as const;
      for (let i = 0; i < 5; i++) await cache.attendAsync(...step());
      const pending = cache.attendAsync(...step());
      await expect(cache.attendAsync(...step())).rejects.toThrow(/have not settled; .*await each step/);
      expect(() => cache.attend(...step())).toThrow(/have not settled/);
      expect(() => cache.append(step()[1], step()[2])).toThrow(/have not settled/);
      expect(() => cache.reset()).toThrow(/have not settled/);
      await pending;
      await cache.attendAsync(...step());
      expect(cache.position).toBe(7);
    }
  });

  it('overlapping windowed calls never give wrong numbers (each either runs alone or is refused)', async () => {
    const cache = new KVCache({ batch: 1, heads: 1, headDim: 16, capacity: 40, window: 8 });
    const reference = new KVCache({ batch: 1, heads: 1, headDim: 16, capacity: 40, window: 8, shared: false });
    for (let i = 0; i < 50; i++) {
      const [q, k, v] = [t4([1, 1, 1, 16]), t4([1, 1, 1, 16]), t4([1, 1, 1, 16])];
      const results = await Promise.allSettled([cache.attendAsync(q, k, v), cache.attendAsync(q, k, v)]);
      expect(results[0].status).toBe('fulfilled');
      expect(results[1].status).toBe('rejected');
      const expected = reference.attend(q, k, v, { backend: 'js' }) as { data: Float32Array };
      const got = (results[0] as PromiseFulfilledResult<{ data: Float32Array }>).value.data;
      for (let d = 0; d < 16; d++) expect(got[d]).toBeCloseTo(expected.data[d], 5);
    }
  });
});

describe.each(BACKENDS.filter((b) => b !== 'cuda'))('MultiHeadAttention owns its weights, backend %s', (backend) => {
  const E = 16, H = 2;
  const make = () => ({ q: values(E * E), k: values(E * E), v: values(E * E), o: values(E * E), qBias: values(E), kBias: values(E), vBias: values(E), oBias: values(E) });

  it('changing the caller arrays after construction changes nothing (self- and cross-attention)', () => {
    const weights = make();
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, weights, backend });
    const x = { data: values(3 * E), shape: [1, 3, E] };
    const kv = { data: values(5 * E), shape: [1, 5, E] };
    const self = Array.from(mha.forward(x).data);
    const before = Array.from(mha.forward(x, kv, kv).data);
    for (const w of Object.values(weights)) w.fill(7);
    expect(Array.from(mha.forward(x).data)).toEqual(self);
    expect(Array.from(mha.forward(x, kv, kv).data)).toEqual(before);
  });

  it.each(['layout', 'out', 'returnLse', 'backend', 'device'])('forward rejects options.%s, which the layer controls', (key) => {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, weights: make(), backend });
    const x = { data: values(3 * E), shape: [1, 3, E] };
    expect(() => mha.forward(x, undefined, undefined, { [key]: key === 'layout' ? 'bshd' : 1 } as never)).toThrow(
      new RegExp(`options\\.${key} is set by the layer itself`),
    );
  });

  it('misspelt options are errors: constructor, weights, forward', () => {
    expect(() => new MultiHeadAttention({ embedDim: E, numHeads: H, weights: make(), backend, batchfirst: false } as never)).toThrow(
      /unknown option 'batchfirst' \(did you mean 'batchFirst'\?\)/,
    );
    expect(() => new MultiHeadAttention({ embedDim: E, numHeads: H, weights: { ...make(), qbias: values(E) } as never, backend })).toThrow(
      /MultiHeadAttention: weights: unknown option 'qbias' \(did you mean 'qBias'\?\)/,
    );
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, weights: make(), backend });
    expect(() => mha.forward({ data: values(3 * E), shape: [1, 3, E] }, undefined, undefined, { casual: true } as never)).toThrow(
      /forward: options: unknown option 'casual' \(did you mean 'causal'\?\)/,
    );
  });
});

describe('misspelt options are errors in every API that takes options', () => {
  it.each([
    ['tensor', () => tensor(new Float32Array(4), [4], { dtyp: 'float32' } as never), /tensor: options: unknown option 'dtyp' \(did you mean 'dtype'\?\)/],
    ['KVCache', () => new KVCache({ batch: 1, heads: 1, headDim: 4, capacity: 4, windw: 2 } as never), /KVCache: options: unknown option 'windw' \(did you mean 'window'\?\)/],
    ['Linear', () => new Linear(new Float32Array(4), 2, 2, { bais: new Float32Array(2) } as never), /Linear: options: unknown option 'bais' \(did you mean 'bias'\?\)/],
    ['DeviceTensor', () => DeviceTensor.empty([1, 1, 1, 1], 'float32', { devcie: 0 } as never), /DeviceTensor: options: unknown option 'devcie' \(did you mean 'device'\?\)/],
  ] as const)('%s', (_, make, message) => {
    expect(make).toThrow(TypeError);
    expect(make).toThrow(message);
  });
});

describe.each(BACKENDS.filter((b) => b !== 'cuda'))('Linear validates threads the same on every backend (%s)', (backend) => {
  it.each([-1, 1.5, 0, 2000, '2'])('threads %s', (threads) => {
    const linear = new Linear(values(6), 2, 3, { backend });
    expect(() => linear.forward(values(3), 1, undefined, threads as never)).toThrow(/Linear\.forward: threads must be an integer in \[1, 1024\]/);
  });
});

describe.each(BACKENDS)('float32 limits are the same on every backend (%s)', (backend) => {
  const q = t4([1, 1, 2, 4]), k = t4([1, 1, 3, 4]), v = t4([1, 1, 3, 4]);
  it('the largest float32 scale is accepted, one past it is rejected', () => {
    expect(() => attention(q, k, v, { backend, scale: 3.4028234663852886e38 })).not.toThrow();
    expect(() => attention(q, k, v, { backend, scale: 3.5e38 })).toThrow(/options\.scale must be a finite float32 number/);
  });
  it('the smallest positive float32 softcap is accepted, smaller ones are rejected', () => {
    expect(() => attention(q, k, v, { backend, softcap: 1.401298464324817e-45 })).not.toThrow();
    expect(() => attention(q, k, v, { backend, softcap: 1e-46 })).toThrow(/options\.softcap must be a float32 number/);
  });
  it('a scale that is not exactly a float32 gives the result of its float32 rounding', () => {
    const a = attention(q, k, v, { backend, scale: 0.1 }).data;
    const b = attention(q, k, v, { backend, scale: Math.fround(0.1) }).data;
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

// README "Numerics": float32 results stay within these bounds of a float64 reference, and
// the kernels' float32 range is what README states.
describe.runIf(backends().cpu.available)('float32 accuracy and range (README numerics)', () => {
  const rows = (S: number, D: number, seed: number) => {
    const r = rng(seed);
    return Float32Array.from({ length: S * D }, () => (r() - 0.5) * 2);
  };
  /** float64 attention for every `step`-th query row; returns relative L2 of `out` on them. */
  const error = (q: Float32Array, k: Float32Array, v: Float32Array, S: number, D: number, out: ArrayLike<number>, step: number, scale = 1 / Math.sqrt(D)) => {
    let num = 0, den = 0;
    const p = new Float64Array(S);
    for (let i = 0; i < S; i += step) {
      let m = -Infinity;
      for (let j = 0; j < S; j++) {
        let d = 0;
        for (let x = 0; x < D; x++) d += q[i * D + x] * k[j * D + x];
        p[j] = d * scale;
        m = Math.max(m, p[j]);
      }
      let l = 0;
      for (let j = 0; j < S; j++) l += (p[j] = Math.exp(p[j] - m));
      for (let x = 0; x < D; x++) {
        let a = 0;
        for (let j = 0; j < S; j++) a += p[j] * v[j * D + x];
        a /= l;
        num += (out[i * D + x] - a) ** 2;
        den += a * a;
      }
    }
    return Math.sqrt(num / den);
  };

  it.each([[1024, 1e-6], [4096, 2e-6]])('Skv %i: relative L2 <= %d', (S, bound) => {
    const D = 64;
    const [q, k, v] = [rows(S, D, 1), rows(S, D, 2), rows(S, D, 3)];
    const t = (data: Float32Array) => ({ data, shape: [1, 1, S, D] });
    const out = attention(t(q), t(k), t(v), { backend: 'cpu' }).data;
    expect(error(q, k, v, S, D, out, 13)).toBeLessThanOrEqual(bound);
  });

  it('values at the edge of the range: max|v| x visible keys just below 3.4e38 stays finite and exact', () => {
    const S = 256, D = 16;
    const [q, k] = [rows(S, D, 4), rows(S, D, 5)];
    const v = rows(S, D, 6).map((x) => x * 1.3e36); // 256 keys x 1.3e36 = 3.3e38
    const t = (data: Float32Array) => ({ data, shape: [1, 1, S, D] });
    const out = attention(t(q), t(k), t(v), { backend: 'cpu' }).data;
    expect(Array.from(out).every(Number.isFinite)).toBe(true);
    expect(error(q, k, v, S, D, out, 5)).toBeLessThanOrEqual(1e-6);
  });

  it('scores at the edge of the range: |q·k·scale| near 1e37 stays finite and exact', () => {
    const S = 64, D = 16;
    const [q, k, v] = [rows(S, D, 7).map((x) => x * 1e18), rows(S, D, 8).map((x) => x * 1e18), rows(S, D, 9)];
    const t = (data: Float32Array) => ({ data, shape: [1, 1, S, D] });
    const out = attention(t(q), t(k), t(v), { backend: 'cpu', scale: 1 }).data;
    expect(Array.from(out).every(Number.isFinite)).toBe(true);
    expect(error(q, k, v, S, D, out, 3, 1)).toBeLessThanOrEqual(1e-6);
  });

  it('past the range the result is non-finite, never a wrong finite number', () => {
    const S = 64, D = 16;
    const t = (data: Float32Array) => ({ data, shape: [1, 1, S, D] });
    const v = rows(S, D, 12).map((x) => (x > 0 ? 3e38 : -3e38)); // two such keys already overflow the sum
    const out = attention(t(rows(S, D, 10)), t(rows(S, D, 11)), t(v), { backend: 'cpu' }).data;
    expect(Array.from(out).some((x) => !Number.isFinite(x))).toBe(true);
    const huge = attention(t(rows(S, D, 10).map((x) => x * 1e30)), t(rows(S, D, 11)), t(rows(S, D, 12)), { backend: 'cpu', scale: 1e10 }).data;
    // Scores past float32 (q·scale overflows): every row is NaN, as README states.
    expect(Array.from(huge).every(Number.isNaN)).toBe(true);
  });
});
