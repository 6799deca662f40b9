// The pure-JS backend: same contract as the native one, row by row with float64 scores
// (O(Skv) memory per row, never O(Sq * Skv)). The fallback when the addon is not built,
// and the "pure-JS version" the benchmarks compare against.
import { fromFloat, toFloat } from '../half';
import type { View4 } from '../tensor';
import type { AttentionCall, Backend } from './types';

function visibleRange(call: AttentionCall, b: number, i: number): [number, number] {
  const Skv = call.k.shape[2];
  const diag = i + call.diagonalOffset;
  let lo = 0;
  let hi = call.keyLengths ? Math.min(Skv, call.keyLengths[b]) : Skv;
  if (call.windowRight >= 0) hi = Math.min(hi, diag + call.windowRight + 1);
  if (call.windowLeft >= 0) lo = Math.max(lo, diag - call.windowLeft);
  return [lo, Math.max(lo, hi)];
}

/** float16/bfloat16 calls: convert the inputs to float32, run, round the output back. */
function referenceHalf(call: AttentionCall): void {
  const dtype = call.q.dtype as 'float16' | 'bfloat16';
  const widen = (view: View4): View4 => {
    const bits = view.data as Uint16Array;
    const data = new Float32Array(bits.length);
    for (let i = 0; i < bits.length; i++) data[i] = toFloat[dtype](bits[i]);
    return { ...view, data, dtype: 'float32' };
  };
  const out: View4 = { ...call.out, data: new Float32Array(call.out.data.length), dtype: 'float32' };
  referenceAttention({ ...call, q: widen(call.q), k: widen(call.k), v: widen(call.v), out });
  const [B, H, S, D] = out.shape;
  const st = out.strides;
  const result = call.out.data as Uint16Array;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < S; i++)
        for (let d = 0; d < D; d++) {
          const at = b * st[0] + h * st[1] + i * st[2] + d * st[3];
          result[at] = fromFloat[dtype](out.data[at]);
        }
}

export function referenceAttention(call: AttentionCall): void {
  if (call.q.dtype !== 'float32') return referenceHalf(call);
  const { q, k, v, out, lse, mask } = call;
  const [B, Hq, Sq, D] = q.shape;
  const [, Hkv, Skv] = k.shape;
  const Dv = v.shape[3];
  const group = Hq / Hkv;
  const qd = q.data as Float32Array;
  const kd = k.data as Float32Array;
  const vd = v.data as Float32Array;
  const od = out.data as Float32Array;
  const scores = new Float64Array(Skv);
  const acc = new Float64Array(Dv);

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const slope = call.alibiSlopes ? call.alibiSlopes[h] : 0;
      for (let i = 0; i < Sq; i++) {
        const [lo, hi] = visibleRange(call, b, i);
        const qBase = b * q.strides[0] + h * q.strides[1] + i * q.strides[2];
        let max = -Infinity;
        let nan = false;
        for (let j = lo; j < hi; j++) {
          const kBase = b * k.strides[0] + hk * k.strides[1] + j * k.strides[2];
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qd[qBase + d * q.strides[3]] * kd[kBase + d * k.strides[3]];
          let s = dot * call.scale;
          if (call.softcap > 0) s = call.softcap * Math.tanh(s / call.softcap);
          if (slope !== 0) s -= slope * Math.abs(i + call.diagonalOffset - j);
          if (mask) {
            const at = b * mask.strides[0] + h * mask.strides[1] + i * mask.strides[2] + j * mask.strides[3];
            if (mask.kind === 'boolean') {
              if (mask.data[at] === 0) s = -Infinity;
            } else s = mask.data[at] === -Infinity ? -Infinity : s + mask.data[at]; // hidden, whatever K holds
          }
          scores[j] = s;
          if (s > max) max = s;
          else if (s !== s) nan = true;
        }
        acc.fill(0);
        // A NaN reaching the row makes it NaN (even when every visible score is NaN).
        let sum = nan ? NaN : 0;
        if (max !== -Infinity) {
          for (let j = lo; j < hi; j++) {
            const p = Math.exp(scores[j] - max);
            if (p === 0) continue;
            sum += p;
            const vBase = b * v.strides[0] + hk * v.strides[1] + j * v.strides[2];
            for (let d = 0; d < Dv; d++) acc[d] += p * vd[vBase + d * v.strides[3]];
          }
        }
        // Fully masked rows: zeros and lse = -Infinity.
        const oBase = b * out.strides[0] + h * out.strides[1] + i * out.strides[2];
        const masked = sum === 0;
        for (let d = 0; d < Dv; d++) od[oBase + d * out.strides[3]] = masked ? 0 : acc[d] / sum;
        if (lse) {
          (lse.data as Float32Array)[b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2]] = masked
            ? -Infinity
            : max + Math.log(sum);
        }
      }
    }
  }
}

export const referenceBackend: Backend = {
  name: 'js',
  run: referenceAttention,
  runAsync: async (call) => referenceAttention(call),
};
