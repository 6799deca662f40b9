// Linear and MultiHeadAttention against a float64 composition of the definition (projections
// by explicit sums, attention by the helpers' oracle), on both backends.
import { describe, expect, it } from 'vitest';
import { backends, KVCache, Linear, MultiHeadAttention, type MultiHeadAttentionOptions } from '../lib';
import { nativeAddon } from '../lib/backends/native';
import { oracle, relativeL2, rng, type Logical, type OracleOptions } from './helpers';

const BACKENDS = backends().cpu.available ? (['cpu', 'js'] as const) : (['js'] as const);
const TOL = 1e-5; // float32 projections and attention vs float64

function randomArray(n: number, random: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (random() - 0.5) * 2 * scale);
}

/** y[r][c] = Σ x[r][d]·w[c][d] + b[c] in float64. */
function project(x: ArrayLike<number>, rows: number, w: Float32Array, n: number, k: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < n; c++) {
      let acc = b ? b[c] : 0;
      for (let d = 0; d < k; d++) acc += x[r * k + d] * w[c * k + d];
      y[r * n + c] = acc;
    }
  return y;
}

/** Rows (b, s) of width H·hd → logical [B, H, S, hd]. */
function heads(y: Float64Array, B: number, S: number, H: number, hd: number, width: number, offset: number): Logical {
  const values = new Float64Array(B * H * S * hd);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++)
        for (let d = 0; d < hd; d++) values[((b * H + h) * S + s) * hd + d] = y[(b * S + s) * width + offset + h * hd + d];
  return { shape: [B, H, S, hd], values };
}

function merge(o: Logical): Float64Array {
  const [B, H, S, hd] = o.shape;
  const rows = new Float64Array(B * S * H * hd);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++)
        for (let d = 0; d < hd; d++) rows[((b * S + s) * H + h) * hd + d] = o.values[((b * H + h) * S + s) * hd + d];
  return rows;
}

interface Model {
  E: number;
  Hq: number;
  Hkv: number;
  hd: number;
  kDim: number;
  vDim: number;
  w: { q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array; qBias?: Float32Array; kBias?: Float32Array; vBias?: Float32Array; oBias?: Float32Array };
}

function makeModel(seed: number, E: number, Hq: number, Hkv: number, hd: number, kDim = E, vDim = E, bias = true): Model {
  const r = rng(seed);
  const s = 1 / Math.sqrt(E);
  const w: Model['w'] = {
    q: randomArray(Hq * hd * E, r, s),
    k: randomArray(Hkv * hd * kDim, r, 1 / Math.sqrt(kDim)),
    v: randomArray(Hkv * hd * vDim, r, 1 / Math.sqrt(vDim)),
    o: randomArray(E * Hq * hd, r, 1 / Math.sqrt(Hq * hd)),
  };
  if (bias) Object.assign(w, { qBias: randomArray(Hq * hd, r), kBias: randomArray(Hkv * hd, r), vBias: randomArray(Hkv * hd, r), oBias: randomArray(E, r) });
  return { E, Hq, Hkv, hd, kDim, vDim, w };
}

/** The float64 definition; inputs batch-first [B, S, F]. */
function referenceMha(m: Model, x: Float32Array, B: number, Sq: number, kx: Float32Array, vx: Float32Array, Skv: number, o: OracleOptions = {}): Float64Array {
  const { E, Hq, Hkv, hd, w } = m;
  const q = heads(project(x, B * Sq, w.q, Hq * hd, E, w.qBias), B, Sq, Hq, hd, Hq * hd, 0);
  const k = heads(project(kx, B * Skv, w.k, Hkv * hd, m.kDim, w.kBias), B, Skv, Hkv, hd, Hkv * hd, 0);
  const v = heads(project(vx, B * Skv, w.v, Hkv * hd, m.vDim, w.vBias), B, Skv, Hkv, hd, Hkv * hd, 0);
  const attended = merge(oracle(q, k, v, o).out);
  return project(attended, B * Sq, w.o, E, Hq * hd, w.oBias);
}

function moduleOf(m: Model, backend: 'cpu' | 'js', extra: Partial<MultiHeadAttentionOptions> = {}): MultiHeadAttention {
  return new MultiHeadAttention({
    embedDim: m.E, numHeads: m.Hq, numKvHeads: m.Hkv, headDim: m.hd, kDim: m.kDim, vDim: m.vDim,
    bias: m.w.qBias !== undefined, weights: m.w, backend, ...extra,
  });
}

/** [B, S, F] ↔ [S, B, F] */
function transpose01(x: ArrayLike<number>, A: number, Bn: number, F: number): Float32Array {
  const out = new Float32Array(A * Bn * F);
  for (let a = 0; a < A; a++) for (let b = 0; b < Bn; b++) for (let f = 0; f < F; f++) out[(b * A + a) * F + f] = x[(a * Bn + b) * F + f];
  return out;
}

describe.each(BACKENDS)('Linear, backend %s', (backend) => {
  it.each([1, 7, 65, 257])('matches float64 for %i rows (3 panels, the last partial), with and without bias', (rows) => {
    const r = rng(rows);
    const [n, k] = [300, 77];
    const w = randomArray(n * k, r);
    const b = randomArray(n, r);
    const x = randomArray(rows * k, r);
    for (const bias of [b, undefined]) {
      const lin = new Linear(w, n, k, { bias, backend });
      expect(lin.backend).toBe(backend);
      const out = new Float32Array(rows * n + 3).fill(NaN);
      lin.forward(x, rows, out);
      expect(relativeL2(out.subarray(0, rows * n), project(x, rows, w, n, k, bias))).toBeLessThanOrEqual(1e-6);
      expect(Number.isNaN(out[rows * n])).toBe(true); // nothing written past the rows
    }
  });

  it('refuses bad arguments', () => {
    const w = new Float32Array(12);
    expect(() => new Linear(w, 4, 4, { backend })).toThrow(/weight holds 12 floats, \[4, 4\] needs 16/);
    expect(() => new Linear(new Float64Array(12) as never, 3, 4, { backend })).toThrow(TypeError);
    expect(() => new Linear(w, 3, 4, { bias: new Float32Array(2), backend })).toThrow(/options\.bias holds 2 floats, \[3\] needs 3/);
    const lin = new Linear(w, 3, 4, { backend });
    expect(() => lin.forward(new Float32Array(7), 2)).toThrow(/x holds 7 floats, \[2, 4\] needs 8/);
    expect(() => lin.forward(new Float32Array(8), 2, new Float32Array(5))).toThrow(/out holds 5 floats/);
    expect(() => lin.forward(new Float32Array(8), 1.5)).toThrow(/rows must be an integer/);
    const shared = new Float32Array(16);
    expect(() => lin.forward(shared.subarray(0, 8), 2, shared.subarray(4, 10))).toThrow(/overlaps/);
  });
});

describe.runIf(backends().cpu.available)('raw linear binding', () => {
  const addon = () => nativeAddon().addon!;
  it('re-checks everything', () => {
    expect(() => addon().linearPack(new Float32Array(5), 2, 3, null)).toThrow(/weight holds 5 floats, \[2, 3\] needs 6/);
    expect(() => addon().linearPack(new Float32Array(6), 0, 3, null)).toThrow(RangeError);
    expect(() => addon().linearPack(new Float32Array(6), 2, 3, new Float32Array(1))).toThrow(/bias holds 1 floats/);
    const h = addon().linearPack(new Float32Array(6), 2, 3, null);
    expect(() => addon().linearForward({}, new Float32Array(3), 1, new Float32Array(2), 0)).toThrow(/handle must come from linearPack/);
    expect(() => addon().linearForward(h, new Float32Array(3), 2, new Float32Array(4), 0)).toThrow(/x holds 3 floats/);
    expect(() => addon().linearForward(h, new Float32Array(3), 1, new Float32Array(1), 0)).toThrow(/y holds 1 floats/);
    expect(() => addon().linearForward(h, new Float32Array(3), 1, new Uint16Array(2) as never, 0)).toThrow(TypeError);
    const buf = new Float32Array(8);
    expect(() => addon().linearForward(h, buf.subarray(0, 3), 1, buf.subarray(2, 4), 0)).toThrow(/overlaps/);
    expect(() => addon().linearForward(h, new Float32Array(3), 1, new Float32Array(2), 5000)).toThrow(/threads/);
  });
});

describe.each(BACKENDS)('MultiHeadAttention, backend %s', (backend) => {
  it('self-attention (GQA, causal) matches the float64 definition', () => {
    const m = makeModel(1, 32, 4, 2, 8);
    const [B, S] = [2, 7];
    const x = randomArray(B * S * 32, rng(2));
    const out = moduleOf(m, backend).forward({ data: x, shape: [B, S, 32] }, undefined, undefined, { causal: true });
    expect(out.shape).toEqual([B, S, 32]);
    expect(relativeL2(out.data, referenceMha(m, x, B, S, x, x, S, { causal: true }))).toBeLessThanOrEqual(TOL);
  });

  it('batchFirst false takes and returns [S, B, E] with the same numbers', () => {
    const m = makeModel(3, 24, 3, 3, 8);
    const [B, S] = [3, 5];
    const x = randomArray(B * S * 24, rng(4));
    const first = moduleOf(m, backend).forward({ data: x, shape: [B, S, 24] });
    const second = moduleOf(m, backend, { batchFirst: false }).forward({ data: transpose01(x, B, S, 24), shape: [S, B, 24] });
    expect(second.shape).toEqual([S, B, 24]);
    expect(relativeL2(transpose01(second.data, S, B, 24), first.data)).toBeLessThanOrEqual(1e-6);
    expect(relativeL2(first.data, referenceMha(m, x, B, S, x, x, S))).toBeLessThanOrEqual(TOL);
  });

  it('one packed qkv matrix gives the same bits as separate weights', () => {
    const m = makeModel(5, 32, 4, 1, 8);
    const x = randomArray(2 * 9 * 32, rng(6));
    const separate = moduleOf(m, backend).forward({ data: x, shape: [2, 9, 32] });
    const qkv = new Float32Array([...m.w.q, ...m.w.k, ...m.w.v]);
    const qkvBias = new Float32Array([...m.w.qBias!, ...m.w.kBias!, ...m.w.vBias!]);
    const packed = new MultiHeadAttention({
      embedDim: 32, numHeads: 4, numKvHeads: 1, backend, weights: { qkv, qkvBias, o: m.w.o, oBias: m.w.oBias },
    }).forward({ data: x, shape: [2, 9, 32] });
    expect(packed.data).toEqual(separate.data);
  });

  it('cross-attention with kDim/vDim, masks and keyLengths', () => {
    const m = makeModel(7, 16, 2, 2, 12, 10, 6);
    const [B, Sq, Skv] = [2, 5, 11];
    const r = rng(8);
    const [x, kx, vx] = [randomArray(B * Sq * 16, r), randomArray(B * Skv * 10, r), randomArray(B * Skv * 6, r)];
    const maskData = Uint8Array.from({ length: Sq * Skv }, (_, i) => (i % 4 === 3 ? 0 : 1));
    const out = moduleOf(m, backend).forward({ data: x, shape: [B, Sq, 16] }, { data: kx, shape: [B, Skv, 10] }, { data: vx, shape: [B, Skv, 6] }, {
      mask: { data: maskData, shape: [Sq, Skv], dtype: 'bool' },
      keyLengths: [11, 6],
    });
    const expected = referenceMha(m, x, B, Sq, kx, vx, Skv, {
      maskAt: (_b, _h, i, j) => maskData[i * Skv + j] !== 0,
      keyLengths: [11, 6],
    });
    expect(relativeL2(out.data, expected)).toBeLessThanOrEqual(TOL);
  });

  it('without biases, and with headDim ≠ embedDim / numHeads', () => {
    const m = makeModel(9, 30, 4, 2, 16, 30, 30, false);
    const x = randomArray(1 * 6 * 30, rng(10));
    const out = moduleOf(m, backend).forward({ data: x, shape: [1, 6, 30] });
    expect(relativeL2(out.data, referenceMha(m, x, 1, 6, x, x, 6))).toBeLessThanOrEqual(TOL);
  });

  it('with a KVCache: prefill + token-by-token decode equals one causal forward over the sequence', () => {
    const m = makeModel(11, 32, 4, 2, 8);
    const [B, T, prefill] = [2, 19, 6];
    const x = randomArray(B * T * 32, rng(12));
    const mha = moduleOf(m, backend);
    const full = mha.forward({ data: x, shape: [B, T, 32] }, undefined, undefined, { causal: true });
    const cache = new KVCache({ batch: B, heads: 2, headDim: 8, capacity: T });
    const slice = (t0: number, t1: number) => ({
      data: x,
      shape: [B, t1 - t0, 32],
      strides: [T * 32, 32, 1],
      // a strided view starting at token t0
    });
    const stepOut: number[][] = [];
    for (let t0 = 0; t0 < T; ) {
      const t1 = t0 === 0 ? prefill : t0 + 1;
      const view = { ...slice(t0, t1), data: x.subarray(t0 * 32) };
      const y = mha.forward(view, undefined, undefined, { cache });
      stepOut.push(Array.from(y.data));
      for (let b = 0; b < B; b++) {
        const got = y.data.subarray(b * (t1 - t0) * 32, (b + 1) * (t1 - t0) * 32);
        const want = full.data.subarray((b * T + t0) * 32, (b * T + t1) * 32);
        expect(relativeL2(got, want)).toBeLessThanOrEqual(1e-6);
      }
      t0 = t1;
    }
    expect(cache.length).toBe(T);
  });

  it('names what is wrong', () => {
    const m = makeModel(13, 16, 2, 2, 8);
    const opts = { embedDim: 16, numHeads: 2, weights: m.w, backend };
    expect(() => new MultiHeadAttention({ ...opts, weights: { ...m.w, q: new Float32Array(5) } })).toThrow(/weights\.q must hold \[16, 16\] = 256 floats, got 5/);
    expect(() => new MultiHeadAttention({ ...opts, weights: { ...m.w, kBias: undefined } })).toThrow(/weights\.kBias is missing/);
    expect(() => new MultiHeadAttention({ ...opts, bias: false })).toThrow(/weights\.qBias given but bias is false/);
    expect(() => new MultiHeadAttention({ ...opts, numHeads: 3, numKvHeads: 2 })).toThrow(/multiple of numKvHeads/);
    expect(() => new MultiHeadAttention({ ...opts, numHeads: 3 })).toThrow(/not divisible by numHeads/);
    const mha = new MultiHeadAttention(opts);
    expect(() => mha.forward({ data: new Float32Array(30), shape: [1, 2, 15] })).toThrow(/query must be \[B, S, F\] with F = 16, got \[1, 2, 15\]/);
    const x = { data: new Float32Array(32), shape: [1, 2, 16] };
    expect(() => mha.forward(x, x)).toThrow(/give both key and value/);
    const cache = new KVCache({ batch: 1, heads: 2, headDim: 8, capacity: 4 });
    expect(() => mha.forward(x, x, { data: new Float32Array(32), shape: [1, 2, 16] }, { cache })).toThrow(/cache is for self-attention only/);
    const wrong = new KVCache({ batch: 1, heads: 1, headDim: 8, capacity: 4 });
    expect(() => mha.forward(x, undefined, undefined, { cache: wrong })).toThrow(/options\.cache must be float32 \[batch 1, heads 2, headDim 8\]/);
  });
});
