// A key a row cannot see, by any mask kind (causal, window, keyLengths, boolean mask,
// -Infinity in an additive mask), never affects that row's output or lse, whatever it holds:
// NaN and ±Infinity in K or V at hidden keys, prefill and decode, sizes that straddle the
// kernels' blocks, every backend (CUDA when this build has it: the CPU shim in CI).
import { describe, expect, it } from 'vitest';
import { attention, backends, type AttentionOptions } from '../lib';
import { fromFloat } from '../lib/half';
import { asFloat, relativeL2, rng } from './helpers';

const available = [
  ...(backends().cpu.available ? (['cpu'] as const) : []),
  'js' as const,
  ...(backends().cuda.available ? (['cuda'] as const) : []),
];
const D = 8;
const H = 2;

interface Case {
  name: string;
  Sq: number;
  Skv: number;
  options: AttentionOptions;
  visible: (i: number, j: number) => boolean;
  poisoned: number[]; // keys (every head) that hold the poison
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const S of [70, 257]) {
    list.push({ name: `causal S${S}`, Sq: S, Skv: S, options: { causal: true }, visible: (i, j) => j <= i, poisoned: [S - 1, 130 % S, 64] });
    list.push({
      name: `window S${S}`, Sq: S, Skv: S, options: { window: { left: 8, right: 2 } },
      visible: (i, j) => j >= i - 8 && j <= i + 2, poisoned: [3, 65, S - 2],
    });
    list.push({
      name: `keyLengths S${S}`, Sq: S, Skv: S, options: { keyLengths: [S - 5] },
      visible: (_, j) => j < S - 5, poisoned: [S - 5, S - 1],
    });
  }
  // Decode (one query row, keys in chunks): lower-right window, key lengths.
  const Skv = 600;
  list.push({
    name: 'decode window', Sq: 1, Skv, options: { causal: 'lower-right', window: { left: 100 } },
    visible: (_, j) => j >= Skv - 1 - 100, poisoned: [10, 255, 256, 498],
  });
  list.push({
    name: 'decode keyLengths', Sq: 1, Skv, options: { keyLengths: [300] }, visible: (_, j) => j < 300,
    poisoned: [300, 301, 599],
  });
  // Element masks: the poisoned keys are hidden from some rows and visible to others.
  for (const [Sq, Skv] of [[70, 70], [257, 257], [1, 600], [5, 600]]) {
    const random = rng(Sq * 1000 + Skv);
    const poisoned = [0, 17, 64, Skv - 1];
    const hidden = new Uint8Array(Sq * Skv);
    for (let i = 0; i < Sq; i++) {
      for (const j of poisoned) hidden[i * Skv + j] = i % 2 === 0 || random() < 0.5 ? 1 : 0;
      for (let j = 0; j < Skv; j++) if (random() < 0.1) hidden[i * Skv + j] = 1;
    }
    const visible = (i: number, j: number) => hidden[i * Skv + j] === 0;
    const bool = Uint8Array.from(hidden, (x) => 1 - x);
    const additive = Float32Array.from(hidden, (x) => (x ? -Infinity : 0.25));
    list.push({ name: `boolean mask Sq${Sq} Skv${Skv}`, Sq, Skv, options: { mask: { data: bool, shape: [Sq, Skv] } }, visible, poisoned });
    list.push({
      name: `additive -Infinity mask Sq${Sq} Skv${Skv}`, Sq, Skv,
      options: { mask: { data: additive, shape: [Sq, Skv] } }, visible, poisoned,
    });
  }
  return list;
}

function data(length: number, seed: number, dtype: 'float32' | 'float16'): Float32Array | Uint16Array {
  const random = rng(seed);
  const values = Float32Array.from({ length }, () => random() - 0.5);
  return dtype === 'float32' ? values : Uint16Array.from(values, (x) => fromFloat.float16(x));
}

function poison(t: Float32Array | Uint16Array, keys: number[], S: number, value: number, dtype: 'float32' | 'float16') {
  const bits = dtype === 'float32' ? value : fromFloat.float16(value);
  for (let h = 0; h < H; h++) for (const j of keys) t[(h * S + j) * D + (j % D)] = bits;
}

describe.each(available)('hidden keys never affect a row, backend %s', (backend) => {
  for (const dtype of ['float32', 'float16'] as const) {
    // The CUDA backend's float32 kernel is SIMT, its float16 kernel runs on tensor cores.
    for (const c of cases()) {
      it.each([
        ['K', NaN], ['K', Infinity], ['K', -Infinity], ['V', NaN], ['V', Infinity], ['V', -Infinity],
      ] as const)(`${dtype}, ${c.name}: %s = %d at hidden keys`, (where, value) => {
        const { Sq, Skv } = c;
        const make = (S: number, seed: number) => ({ data: data(H * S * D, seed, dtype), shape: [1, H, S, D], dtype });
        const q = make(Sq, 1), k = make(Skv, 2), v = make(Skv, 3);
        const options = { ...c.options, backend, returnLse: true as const };
        const clean = attention(q, k, v, options);
        const target = where === 'K' ? k : v;
        poison(target.data, c.poisoned, Skv, value, dtype);
        const dirty = attention(q, k, v, options);
        const cleanOut = asFloat(clean.output).data, dirtyOut = asFloat(dirty.output).data;
        let compared = 0;
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < Sq; i++) {
            const row = h * Sq + i;
            const sees = c.poisoned.some((j) => c.visible(i, j));
            const a = dirtyOut.subarray(row * D, (row + 1) * D), b = cleanOut.subarray(row * D, (row + 1) * D);
            if (sees) {
              // A NaN the row can see makes it NaN, never a silent number (a NaN score the
              // whole row; a NaN value the element it sits in).
              if (Number.isNaN(value)) expect(Array.from(a).some(Number.isNaN)).toBe(true);
              if (Number.isNaN(value) && where === 'K') expect(Array.from(a).every(Number.isNaN)).toBe(true);
              continue;
            }
            compared++;
            expect(Array.from(a).every(Number.isFinite)).toBe(true);
            if (backend === 'cuda') {
              expect(relativeL2(a, b)).toBeLessThanOrEqual(dtype === 'float32' ? 1e-6 : 2e-3);
              expect(Math.abs(dirty.lse.data[row] - clean.lse.data[row])).toBeLessThanOrEqual(1e-5);
            } else {
              // CPU and JS: skipping a hidden key adds exactly what p = 0 added before.
              expect(Array.from(a)).toEqual(Array.from(b));
              expect(dirty.lse.data[row]).toBe(clean.lse.data[row]);
            }
          }
        }
        expect(compared).toBeGreaterThan(0);
      });
    }
  }
});
