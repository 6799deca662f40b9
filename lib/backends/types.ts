// The contract between the API layer and a backend: validated views in logical
// [B, H, S, D] order plus normalised mask options. The native binding takes the same shape.
import type { NormalizedMask } from '../masks';
import type { View4 } from '../tensor';

export interface AttentionCall extends NormalizedMask {
  q: View4; // [B, Hq, Sq, D]
  k: View4; // [B, Hkv, Skv, D]
  v: View4; // [B, Hkv, Skv, Dv]
  out: View4; // [B, Hq, Sq, Dv], written in full
  lse: View4 | null; // float32 [B, Hq, Sq, 1]
  scale: number;
  threads: number; // 0: the backend's default
  device: number; // CUDA device for backend 'cuda'; -1 otherwise
}

export interface Backend {
  readonly name: 'cpu' | 'cuda' | 'js';
  run(call: AttentionCall): void;
  runAsync(call: AttentionCall): Promise<void>;
}
