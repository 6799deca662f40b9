// The pure-JS backend: same contract as the native one, row by row with float64 scores
// (O(Skv) memory per row, never O(Sq * Skv)). The fallback when the addon is not built,
// and the "pure-JS version" the benchmarks compare against.
import type { AttentionCall, Backend } from './types';

function visibleRange(call: AttentionCall, b: number, i: number): [number, number] {
  const Sq = call.q.shape[2];
  const Skv = call.k.shape[2];
  const diag = i + (call.alignment === 'lower-right' ? Skv - Sq : 0);
  let lo = 0;
  let hi = call.keyLengths ? Math.min(Skv, call.keyLengths[b]) : Skv;
  if (call.causal) hi = Math.min(hi, diag + 1);
  if (call.windowRight >= 0) hi = Math.min(hi, diag + call.windowRight + 1);
  if (call.windowLeft >= 0) lo = Math.max(lo, diag - call.windowLeft);
  return [lo, Math.max(lo, hi)];
}

export function referenceAttention(call: AttentionCall): void {
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
  const offset = call.alignment === 'lower-right' ? Skv - Sq : 0;

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const slope = call.alibiSlopes ? call.alibiSlopes[h] : 0;
      for (let i = 0; i < Sq; i++) {
        const [lo, hi] = visibleRange(call, b, i);
        const qBase = b * q.strides[0] + h * q.strides[1] + i * q.strides[2];
        let max = -Infinity;
        for (let j = lo; j < hi; j++) {
          const kBase = b * k.strides[0] + hk * k.strides[1] + j * k.strides[2];
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qd[qBase + d * q.strides[3]] * kd[kBase + d * k.strides[3]];
          let s = dot * call.scale;
          if (call.softcap > 0) s = call.softcap * Math.tanh(s / call.softcap);
          if (slope !== 0) s -= slope * Math.abs(i + offset - j);
          if (mask) {
            const at = b * mask.strides[0] + h * mask.strides[1] + i * mask.strides[2] + j * mask.strides[3];
            if (mask.kind === 'boolean') {
              if (mask.data[at] === 0) s = -Infinity;
            } else s += mask.data[at];
          }
          scores[j] = s;
          if (s > max) max = s;
        }
        acc.fill(0);
        let sum = 0;
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
        for (let d = 0; d < Dv; d++) od[oBase + d * out.strides[3]] = sum > 0 ? acc[d] / sum : 0;
        if (lse) {
          (lse.data as Float32Array)[b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2]] =
            sum > 0 ? max + Math.log(sum) : -Infinity;
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
