// An independent implementation: the same MultiHeadAttention weights through onnxruntime-node
// (MatMul/Add projections around its com.microsoft MultiHeadAttention op, in a model written
// by bench/onnx-model.mjs) must give qkv's output. onnxruntime-node lives in bench/
// (npm run bench installs it); without it this file is skipped, unless QKV_REQUIRE_ORT=1 (CI).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backends, MultiHeadAttention } from '../lib';
import { relativeL2, rng } from './helpers';

const benchDir = join(__dirname, '..', 'bench');
const installed = existsSync(join(benchDir, 'node_modules', 'onnxruntime-node', 'package.json'));

it('onnxruntime-node is installed where CI requires the cross-check', () => {
  if (process.env.QKV_REQUIRE_ORT === '1') expect(installed).toBe(true);
});

function random(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 2 * scale);
}

/** [rows, cols] → [cols, rows] (ONNX MatMul takes x·W with W [in, out]; PyTorch stores [out, in]). */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

describe.runIf(installed && backends().cpu.available)('MultiHeadAttention against onnxruntime-node', () => {
  // Loaded lazily: vitest collects this block even where it is skipped.
  const ort = () => createRequire(join(benchDir, 'package.json'))('onnxruntime-node');

  async function crossCheck(c: { B: number; Sq: number; Skv: number; E: number; heads: number; kDim: number; vDim: number; causal: boolean; self: boolean }) {
    const { multiHeadAttentionLayerModel } = await import('../bench/onnx-model.mjs' as string);
    const { B, Sq, Skv, E, heads, kDim, vDim } = c;
    const s = 11 + Sq;
    const w = {
      q: random(E * E, s, 1 / Math.sqrt(E)), k: random(E * kDim, s + 1, 1 / Math.sqrt(kDim)), v: random(E * vDim, s + 2, 1 / Math.sqrt(vDim)),
      o: random(E * E, s + 3, 1 / Math.sqrt(E)), qBias: random(E, s + 4), kBias: random(E, s + 5), vBias: random(E, s + 6), oBias: random(E, s + 7),
    };
    const x = random(B * Sq * E, s + 8);
    const key = c.self ? x : random(B * Skv * kDim, s + 9);
    const value = c.self ? x : random(B * Skv * vDim, s + 10);
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: heads, kDim, vDim, weights: w, backend: 'cpu' });
    const ours = c.self
      ? mha.forward({ data: x, shape: [B, Sq, E] }, undefined, undefined, { causal: c.causal })
      : mha.forward({ data: x, shape: [B, Sq, E] }, { data: key, shape: [B, Skv, kDim] }, { data: value, shape: [B, Skv, vDim] }, { causal: c.causal });

    const session = await ort().InferenceSession.create(multiHeadAttentionLayerModel({ heads, causal: c.causal }));
    const T = (data: Float32Array, dims: number[]) => new (ort().Tensor)('float32', data, dims);
    const result = await session.run({
      query: T(x, [B, Sq, E]), key: T(key, [B, Skv, kDim]), value: T(value, [B, Skv, vDim]),
      wq: T(transpose(w.q, E, E), [E, E]), bq: T(w.qBias, [E]),
      wk: T(transpose(w.k, E, kDim), [kDim, E]), bk: T(w.kBias, [E]),
      wv: T(transpose(w.v, E, vDim), [vDim, E]), bv: T(w.vBias, [E]),
      wo: T(transpose(w.o, E, E), [E, E]), bo: T(w.oBias, [E]),
    });
    await session.release();
    const theirs = result.output.data as Float32Array;
    expect(result.output.dims).toEqual([B, Sq, E]);
    expect(relativeL2(ours.data, theirs)).toBeLessThanOrEqual(1e-5);
  }

  it('self-attention', () => crossCheck({ B: 2, Sq: 13, Skv: 13, E: 64, heads: 4, kDim: 64, vDim: 64, causal: false, self: true }));
  it('causal self-attention', () => crossCheck({ B: 1, Sq: 37, Skv: 37, E: 48, heads: 3, kDim: 48, vDim: 48, causal: true, self: true }));
  it('cross-attention with kDim and vDim of their own', () => crossCheck({ B: 2, Sq: 7, Skv: 19, E: 32, heads: 2, kDim: 24, vDim: 40, causal: false, self: false }));
});
