// Every option against the float64 oracle, on both backends, in every layout.
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends, splitHeads, type AttentionOptions, type Tensor } from '../lib';
import {
  FP32_TOLERANCE,
  oracle,
  place,
  randomLogical,
  readLogical,
  relativeL2,
  rng,
  asFloat,
  placeAs,
  roundTo,
  TOLERANCE,
  type OracleOptions,
  type Placement,
} from './helpers';
import type { DType } from '../lib';

// 'cuda' runs where a device is found: in CI that is the QKV_CUDA=SHIM build (the kernels
// and host code emulated on the CPU); elsewhere a real GPU. Skipped otherwise.
const BACKENDS = ['cpu', 'js', 'cuda'] as const;

it('the native backend is built (set QKV_BUILD=skip to test a JS-only install)', () => {
  if (process.env.QKV_BUILD === 'skip') return;
  const info = backends();
  expect(info.cpu.available, info.cpu.available ? '' : info.cpu.reason).toBe(true);
  expect(info.default).toBe('cpu');
  if (!info.cpu.available) return;
  const { isa, isas } = info.cpu.capabilities;
  expect(isas).toContain('scalar');
  // QKV_ISA forces a lower kernel when the CPU has it (CI runs the suite once per ISA).
  const forced = process.env.QKV_ISA;
  expect(isa).toBe(forced && isas.includes(forced) ? forced : isas[0]);
});

const available = (backend: (typeof BACKENDS)[number]) =>
  backend === 'js' || (backend === 'cpu' ? backends().cpu.available : backends().cuda.available);

interface Case {
  name: string;
  B?: number;
  Hq?: number;
  Hkv?: number;
  Sq: number;
  Skv: number;
  D?: number;
  Dv?: number;
  options?: AttentionOptions;
  oracle?: OracleOptions;
}

/** Runs one case through `attention` and compares output and lse with the oracle. */
function check(backend: (typeof BACKENDS)[number], c: Case, placement: Placement, seed = 1, dtype: DType = 'float32'): void {
  const random = rng(seed);
  const B = c.B ?? 2;
  const Hq = c.Hq ?? 2;
  const Hkv = c.Hkv ?? Hq;
  const D = c.D ?? 16;
  const Dv = c.Dv ?? D;
  const q = roundTo(randomLogical([B, Hq, c.Sq, D], random), dtype);
  const k = roundTo(randomLogical([B, Hkv, c.Skv, D], random), dtype);
  const v = roundTo(randomLogical([B, Hkv, c.Skv, Dv], random), dtype);
  const layout = placement === 'bshd' ? 'bshd' : 'bhsd';
  const result = attention(placeAs(q, placement, dtype), placeAs(k, placement, dtype), placeAs(v, placement, dtype), {
    ...c.options,
    layout,
    backend,
    returnLse: true,
  });
  const { lse } = result;
  expect(result.output.dtype).toBe(dtype);
  const output = asFloat(result.output);
  const expected = oracle(q, k, v, c.oracle ?? {});
  const actual = readLogical(output, layout);
  expect(actual.shape).toEqual(expected.out.shape);
  expect(relativeL2(actual.values, expected.out.values)).toBeLessThanOrEqual(TOLERANCE[dtype]);
  expect(lse.shape).toEqual([B, Hq, c.Sq]);
  for (let i = 0; i < expected.lse.length; i++) {
    const e = expected.lse[i];
    if (e === -Infinity) {
      expect(lse.data[i]).toBe(-Infinity);
      const row = actual.values.subarray(i * Dv, (i + 1) * Dv);
      expect(Array.from(row).every((x) => Object.is(x, 0))).toBe(true);
    } else {
      // lse is float32 from float32 accumulation whatever the input dtype
      expect(Math.abs(lse.data[i] - e)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(e)));
    }
  }
}

// Broadcast masks for the cases below; each comes with the oracle's per-element view.
function booleanMask(shape: number[], seed: number): { tensor: Tensor<Uint8Array>; at: OracleOptions['maskAt'] } {
  const random = rng(seed);
  const data = Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (random() < 0.7 ? 1 : 0));
  return { tensor: { data, shape, dtype: 'bool' }, at: (...idx) => data[broadcastIndex(shape, idx)] !== 0 };
}

function additiveMask(shape: number[], seed: number): { tensor: Tensor<Float32Array>; at: OracleOptions['maskAt'] } {
  const random = rng(seed);
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () =>
    random() < 0.2 ? -Infinity : (random() - 0.5) * 4,
  );
  return {
    tensor: { data, shape, dtype: 'float32' },
    at: (...idx) => {
      const x = data[broadcastIndex(shape, idx)];
      return x === -Infinity ? false : x;
    },
  };
}

/** Index of [b, h, i, j] into a contiguous tensor of `shape` broadcast on the right. */
function broadcastIndex(shape: number[], idx: number[]): number {
  const full = idx.slice(4 - shape.length);
  let at = 0;
  for (let d = 0; d < shape.length; d++) at = at * shape[d] + (shape[d] === 1 ? 0 : full[d]);
  return at;
}

const SIZES: Array<[number, number]> = [
  [1, 1],
  [1, 257],
  [7, 7],
  [7, 65],
  [63, 63],
  [65, 7],
  [65, 129],
  [257, 257],
];

function cases(): Case[] {
  const list: Case[] = [];
  for (const [Sq, Skv] of SIZES) {
    list.push({ name: `plain Sq${Sq} Skv${Skv}`, Sq, Skv, B: Sq > 100 ? 1 : 2 });
    list.push({
      name: `causal Sq${Sq} Skv${Skv}`,
      Sq,
      Skv,
      B: 1,
      options: { causal: true },
      oracle: { causal: true },
    });
    list.push({
      name: `lower-right Sq${Sq} Skv${Skv}`,
      Sq,
      Skv,
      B: 1,
      options: { causal: 'lower-right' },
      oracle: { causal: 'lower-right' },
    });
  }
  list.push({ name: 'D 1', Sq: 5, Skv: 9, D: 1 });
  list.push({ name: 'D 64 Dv 7', Sq: 33, Skv: 70, D: 64, Dv: 7 });
  list.push({ name: 'D 7 Dv 65', Sq: 9, Skv: 66, D: 7, Dv: 65 });
  list.push({ name: 'decode D 64 Dv 7', Sq: 1, Skv: 300, D: 64, Dv: 7 });
  list.push({ name: 'D 128', Sq: 20, Skv: 80, D: 128, Hq: 1 });
  list.push({ name: 'GQA 4/2', Sq: 17, Skv: 40, Hq: 4, Hkv: 2 });
  list.push({ name: 'MQA 3/1', Sq: 17, Skv: 40, Hq: 3, Hkv: 1, options: { causal: true }, oracle: { causal: true } });
  list.push({ name: 'scale 0.37', Sq: 9, Skv: 20, options: { scale: 0.37 }, oracle: { scale: 0.37 } });
  list.push({ name: 'large scores', Sq: 9, Skv: 20, options: { scale: 30 }, oracle: { scale: 30 } });
  for (const shape of [[9, 70], [2, 1, 1, 70], [2, 2, 9, 70], [1, 2, 1, 1], [70]]) {
    const bm = booleanMask(shape, 11);
    list.push({ name: `bool mask ${shape}`, Sq: 9, Skv: 70, options: { mask: bm.tensor }, oracle: { maskAt: bm.at } });
    const am = additiveMask(shape, 12);
    list.push({ name: `additive mask ${shape}`, Sq: 9, Skv: 70, options: { mask: am.tensor }, oracle: { maskAt: am.at } });
  }
  const keyLengths = [0, 37];
  list.push({ name: 'keyLengths (one batch empty)', Sq: 7, Skv: 70, options: { keyLengths }, oracle: { keyLengths } });
  list.push({
    name: 'keyLengths + causal lower-right',
    Sq: 7,
    Skv: 70,
    options: { keyLengths: Int32Array.from([70, 3]), causal: 'lower-right' },
    oracle: { keyLengths: [70, 3], causal: 'lower-right' },
  });
  list.push({
    name: 'sliding window + causal',
    Sq: 100,
    Skv: 100,
    B: 1,
    options: { window: { left: 13 }, causal: true },
    oracle: { window: { left: 13 }, causal: true },
  });
  list.push({
    name: 'window both sides',
    Sq: 30,
    Skv: 90,
    B: 1,
    options: { window: { left: 4, right: 70 } },
    oracle: { window: { left: 4, right: 70 } },
  });
  list.push({
    name: 'window lower-right decode (key chunks fully masked)',
    Sq: 3,
    Skv: 700,
    B: 1,
    options: { window: { left: 200 }, causal: 'lower-right' },
    oracle: { window: { left: 200 }, causal: 'lower-right' },
  });
  list.push({
    name: 'decode GQA 8/2 with keyLengths',
    Sq: 2,
    Skv: 600,
    Hq: 8,
    Hkv: 2,
    options: { keyLengths: [600, 311], causal: 'lower-right' },
    oracle: { keyLengths: [600, 311], causal: 'lower-right' },
  });
  list.push({
    name: 'alibi',
    Sq: 20,
    Skv: 80,
    Hq: 4,
    options: { alibiSlopes: [0.5, 0.25, 0.125, 0.0625], causal: true },
    oracle: { alibiSlopes: [0.5, 0.25, 0.125, 0.0625], causal: true },
  });
  list.push({
    name: 'softcap',
    Sq: 20,
    Skv: 80,
    options: { softcap: 0.5, scale: 3 },
    oracle: { softcap: 0.5, scale: 3 },
  });
  const bm = booleanMask([2, 1, 30, 60], 13);
  list.push({
    name: 'everything combined',
    Sq: 30,
    Skv: 60,
    Hq: 4,
    Hkv: 2,
    D: 24,
    Dv: 20,
    options: {
      causal: 'lower-right',
      mask: bm.tensor,
      keyLengths: [60, 50],
      window: { left: 20 },
      alibiSlopes: [0.1, 0.2, 0.3, 0.4],
      softcap: 5,
      scale: 0.3,
    },
    oracle: {
      causal: 'lower-right',
      maskAt: bm.at,
      keyLengths: [60, 50],
      window: { left: 20 },
      alibiSlopes: [0.1, 0.2, 0.3, 0.4],
      softcap: 5,
      scale: 0.3,
    },
  });
  return list;
}

describe.each(BACKENDS)('backend %s', (backend) => {
  describe.runIf(available(backend)).each(['bhsd', 'bshd', 'strided'] as const)('%s', (placement) => {
    it.each(cases().map((c) => [c.name, c] as const))('%s', (_, c) => check(backend, c, placement));
  });
});

describe.each(BACKENDS)('half precision, backend %s', (backend) => {
  const half = cases().filter((c) => /plain Sq(1|7|65) |causal Sq65 Skv129|GQA|D 64 Dv 7|everything|bool mask 2,1,1,70|keyLengths|decode/.test(c.name));
  describe.runIf(available(backend)).each(['float16', 'bfloat16'] as const)('%s', (dtype) => {
    it.each(half.map((c) => [c.name, c] as const))('%s', (_, c) => {
      check(backend, c, 'bhsd', 3, dtype);
      check(backend, c, 'strided', 4, dtype);
    });
  });
});

describe.each(BACKENDS)('outputs, backend %s', (backend) => {
  const random = rng(7);
  const [B, H, Sq, Skv, D] = [2, 3, 11, 19, 8];
  const q = randomLogical([B, H, Sq, D], random);
  const k = randomLogical([B, H, Skv, D], random);
  const v = randomLogical([B, H, Skv, D], random);
  const expected = oracle(q, k, v, { causal: true });

  it.runIf(available(backend))('writes every element of a poisoned out buffer, in place', () => {
    const out = { data: new Float32Array(B * H * Sq * D).fill(NaN), shape: [B, H, Sq, D] };
    const result = attention(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), { causal: true, out, backend });
    expect(result.data).toBe(out.data);
    expect(relativeL2(result.data, expected.out.values)).toBeLessThanOrEqual(FP32_TOLERANCE);
  });

  it.runIf(available(backend))('writes into a strided out view and leaves the gaps alone', () => {
    // out as split heads of a [B, Sq, H*D] buffer with 3 spare floats per row: merge is free.
    const rowStride = H * D + 3;
    const buffer = new Float32Array(B * Sq * rowStride).fill(-7);
    const view = splitHeads({ data: buffer, shape: [B, Sq, H * D], strides: [Sq * rowStride, rowStride, 1] }, H);
    attention(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), { causal: true, out: view, backend });
    expect(relativeL2(readLogical(view, 'bhsd').values, expected.out.values)).toBeLessThanOrEqual(FP32_TOLERANCE);
    for (let r = 0; r < B * Sq; r++) {
      expect(Array.from(buffer.subarray(r * rowStride + H * D, (r + 1) * rowStride))).toEqual([-7, -7, -7]);
    }
  });

  it.runIf(available(backend))('attentionAsync gives the same bits as attention', async () => {
    const sync = attention(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), { causal: true, backend, returnLse: true });
    const pending = attentionAsync(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), {
      causal: true,
      backend,
      returnLse: true,
    });
    expect(pending).toBeInstanceOf(Promise);
    const async_ = await pending;
    expect(async_.output.data).toEqual(sync.output.data);
    expect(async_.lse.data).toEqual(sync.lse.data);
  });

  it.runIf(available(backend))('runs many overlapping async calls', async () => {
    const calls = Array.from({ length: 32 }, () =>
      attentionAsync(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), { causal: true, backend }),
    );
    for (const out of await Promise.all(calls)) {
      expect(relativeL2(out.data, expected.out.values)).toBeLessThanOrEqual(FP32_TOLERANCE);
    }
  });

  it.runIf(backend === 'cpu' && available(backend))('is bitwise identical for any thread count and run', () => {
    for (const [Sq, Skv] of [
      [300, 300],
      [1, 3000],
    ]) {
      const r = rng(Sq);
      const [qq, kk, vv] = [randomLogical([2, 4, Sq, 32], r), randomLogical([2, 2, Skv, 32], r), randomLogical([2, 2, Skv, 32], r)];
      const run = (threads: number) =>
        attention(place(qq, 'bhsd'), place(kk, 'bhsd'), place(vv, 'bhsd'), { causal: 'lower-right', threads, returnLse: true, backend });
      const one = run(1);
      for (const threads of [2, 3, 1]) {
        const other = run(threads);
        expect(Buffer.from(other.output.data.buffer).equals(Buffer.from(one.output.data.buffer))).toBe(true);
        expect(Buffer.from(other.lse.data.buffer).equals(Buffer.from(one.lse.data.buffer))).toBe(true);
      }
    }
  });

  it.runIf(available(backend))('handles empty batches and empty query/key sequences', () => {
    const empty = { data: new Float32Array(0), shape: [0, 2, 3, 4] };
    expect(attention(empty, empty, empty, { backend }).shape).toEqual([0, 2, 3, 4]);
    const q1 = { data: new Float32Array(8).fill(1), shape: [1, 1, 2, 4] };
    const none = { data: new Float32Array(0), shape: [1, 1, 0, 4] };
    const r = attention(q1, none, none, { backend, returnLse: true });
    expect(Array.from(r.output.data)).toEqual(new Array(8).fill(0));
    expect(Array.from(r.lse.data)).toEqual([-Infinity, -Infinity]);
    expect(attention(none, q1, q1, { backend }).shape).toEqual([1, 1, 0, 4]);
  });
});
