// Test helpers: seeded random data, tensors in any layout/strides, and a float64 oracle
// written straight from the definition (full score matrix, explicit per-element masks).
import type { DType, Tensor } from '../lib';
import { fromFloat, toFloat } from '../lib/half';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A logical [B, H, S, D] array of float64 values (rounded to float32), never zero. */
export interface Logical {
  shape: [number, number, number, number];
  values: Float64Array;
}

export function randomLogical(shape: [number, number, number, number], random: () => number, spread = 2): Logical {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = Math.fround((random() - 0.5) * spread + (random() < 0.5 ? -1e-3 : 1e-3));
  return { shape, values };
}

export type Placement = 'bhsd' | 'bshd' | 'strided';

/**
 * The logical tensor as the API sees it: 'bhsd' contiguous, 'bshd' contiguous ([B,S,H,D]
 * in memory, shape in bshd order), or 'strided': bhsd order with padded, permuted memory
 * (S outermost, gaps between rows and elements) filled with poison around the view.
 */
export function place(x: Logical, placement: Placement): Tensor<Float32Array> {
  return placeAs(x, placement, 'float32') as Tensor<Float32Array>;
}

/** Rounds every value to `dtype` in place, so an oracle sees exactly the kernel's inputs. */
export function roundTo(x: Logical, dtype: DType): Logical {
  if (dtype !== 'float32') for (let i = 0; i < x.values.length; i++) x.values[i] = toFloat[dtype](fromFloat[dtype](x.values[i]));
  return x;
}

/** place() in any dtype: float16/bfloat16 data are Uint16Array bits (poison is NaN bits). */
export function placeAs(x: Logical, placement: Placement, dtype: DType): Tensor<Float32Array | Uint16Array> {
  const t = placeFloat(x, placement);
  if (dtype === 'float32') return t;
  const data = new Uint16Array(t.data.length);
  for (let i = 0; i < data.length; i++) data[i] = fromFloat[dtype](t.data[i]);
  return { ...t, data, dtype };
}

/** Converts a tensor's data to numbers (half bits decoded). */
export function asFloat(t: Tensor): Tensor<Float32Array> {
  if (t.dtype === 'float32') return t as Tensor<Float32Array>;
  const dtype = t.dtype as 'float16' | 'bfloat16';
  return { ...t, data: Float32Array.from(t.data as Uint16Array, (h) => toFloat[dtype](h)), dtype: 'float32' };
}

function placeFloat(x: Logical, placement: Placement): Tensor<Float32Array> {
  const [B, H, S, D] = x.shape;
  const at = (b: number, h: number, s: number, d: number) => x.values[((b * H + h) * S + s) * D + d];
  if (placement === 'bhsd') return { data: Float32Array.from(x.values), dtype: 'float32', shape: [B, H, S, D] };
  if (placement === 'bshd') {
    const data = new Float32Array(B * S * H * D);
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++)
        for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) data[((b * S + s) * H + h) * D + d] = at(b, h, s, d);
    return { data, dtype: 'float32', shape: [B, S, H, D] };
  }
  // memory order [S, B, H, D] with element stride 2 and one spare row per S step.
  const sd = 2;
  const sh = D * sd + 1;
  const sb = H * sh;
  const ss = B * sb + 3;
  const data = new Float32Array(S * ss + 5).fill(NaN);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) data[s * ss + b * sb + h * sh + d * sd] = at(b, h, s, d);
  return { data, dtype: 'float32', shape: [B, H, S, D], strides: [sb, sh, ss, sd] };
}

/** Reads a tensor of logical [B,H,S,D] values back (layout tells how its shape is ordered). */
export function readLogical(t: Tensor, layout: 'bhsd' | 'bshd'): Logical {
  const s = t.shape;
  const shape: [number, number, number, number] = layout === 'bhsd' ? [s[0], s[1], s[2], s[3]] : [s[0], s[2], s[1], s[3]];
  const st = t.strides ?? [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
  const strides = layout === 'bhsd' ? st : [st[0], st[2], st[1], st[3]];
  const [B, H, S, D] = shape;
  const values = new Float64Array(B * H * S * D);
  let i = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let q = 0; q < S; q++)
        for (let d = 0; d < D; d++) values[i++] = t.data[b * strides[0] + h * strides[1] + q * strides[2] + d * strides[3]];
  return { shape, values };
}

export interface OracleOptions {
  scale?: number;
  causal?: boolean | 'upper-left' | 'lower-right';
  /** Per-element mask over [B, Hq, Sq, Skv]: false = masked, a number = added to the score. */
  maskAt?: (b: number, h: number, i: number, j: number) => boolean | number;
  keyLengths?: number[];
  window?: { left?: number; right?: number };
  alibiSlopes?: number[];
  softcap?: number;
}

/** Full-matrix float64 attention: returns output [B, Hq, Sq, Dv] and lse [B, Hq, Sq]. */
export function oracle(q: Logical, k: Logical, v: Logical, o: OracleOptions = {}): { out: Logical; lse: Float64Array } {
  const [B, Hq, Sq, D] = q.shape;
  const [, Hkv, Skv] = k.shape;
  const Dv = v.shape[3];
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const lowerRight = o.causal === 'lower-right';
  const out = new Float64Array(B * Hq * Sq * Dv);
  const lse = new Float64Array(B * Hq * Sq);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor((h * Hkv) / Hq);
      for (let i = 0; i < Sq; i++) {
        const diag = lowerRight ? i + Skv - Sq : i;
        const scores: number[] = [];
        for (let j = 0; j < Skv; j++) {
          let visible = true;
          if (o.causal && j > diag) visible = false;
          if (o.keyLengths && j >= o.keyLengths[b]) visible = false;
          if (o.window?.left !== undefined && j < diag - o.window.left) visible = false;
          if (o.window?.right !== undefined && j > diag + o.window.right) visible = false;
          let s = 0;
          for (let d = 0; d < D; d++) s += q.values[((b * Hq + h) * Sq + i) * D + d] * k.values[((b * Hkv + hk) * Skv + j) * D + d];
          s *= scale;
          if (o.softcap) s = o.softcap * Math.tanh(s / o.softcap);
          if (o.alibiSlopes) s -= o.alibiSlopes[h] * Math.abs(diag - j);
          const m = o.maskAt?.(b, h, i, j);
          if (m === false) visible = false;
          else if (typeof m === 'number') s += m;
          scores.push(visible ? s : -Infinity);
        }
        const max = Math.max(...scores, -Infinity);
        const row = (b * Hq + h) * Sq + i;
        if (max === -Infinity) {
          lse[row] = -Infinity;
          continue; // zeros
        }
        const p = scores.map((s) => Math.exp(s - max));
        const sum = p.reduce((a, x) => a + x, 0);
        lse[row] = max + Math.log(sum);
        for (let d = 0; d < Dv; d++) {
          let acc = 0;
          for (let j = 0; j < Skv; j++) acc += p[j] * v.values[((b * Hkv + hk) * Skv + j) * Dv + d];
          out[row * Dv + d] = acc / sum;
        }
      }
    }
  return { out: { shape: [B, Hq, Sq, Dv], values: out }, lse };
}

/** Relative L2 error of `actual` against `expected` (absolute when expected is all zero). */
export function relativeL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = actual[i] - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
  }
  if (Number.isNaN(num)) return Infinity;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** The numerics contract: relative L2 error against the float64 oracle, per dtype. */
export const TOLERANCE: Record<DType, number> = { float32: 1e-6, float16: 2e-3, bfloat16: 1e-2 };
export const FP32_TOLERANCE = TOLERANCE.float32;

/**
 * Runs `script` in a fresh Node process with `qkv` bound to the built package (dist/, CommonJS)
 * and `env` added to this process's environment; returns what it printed as JSON. For what
 * one process can observe only once (environment read at load, thread counts, crashes).
 */
export function childJson(script: string, env: Record<string, string> = {}): any {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const { join } = require('node:path') as typeof import('node:path');
  const lib = JSON.stringify(join(__dirname, '..', 'dist', 'cjs', 'index.js'));
  const r = spawnSync(process.execPath, ['-e', `const qkv = require(${lib});\n${script}`], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`child exited with ${r.status ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
