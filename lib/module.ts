// MultiHeadAttention: input projections (one fused Q/K/V GEMM for self-attention), attention
// on strided views of the projection output (no head split/merge copies), output projection.
import { ATTENTION_OPTION_KEYS, attention, type AttentionOptions } from './attention';
import { KVCache } from './kv-cache';
import { Linear } from './linear';
import { checkKeys, optionsObject, show } from './options';
import { checkTensor, contiguousData, describe, formatShape, type Tensor, type TensorLike } from './tensor';

/** Separate projection weights, PyTorch nn.Linear layout [out, in], row-major float32. */
export interface SeparateWeights {
  /** [numHeads·headDim, embedDim] */
  q: Float32Array;
  /** [numKvHeads·headDim, kDim] */
  k: Float32Array;
  /** [numKvHeads·headDim, vDim] */
  v: Float32Array;
  /** [embedDim, numHeads·headDim] */
  o: Float32Array;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  oBias?: Float32Array;
}

/** One packed input projection, rows [Q; K; V] ((numHeads + 2·numKvHeads)·headDim × embedDim), as in PyTorch's in_proj_weight. */
export interface PackedWeights {
  qkv: Float32Array;
  qkvBias?: Float32Array;
  o: Float32Array;
  oBias?: Float32Array;
}

export interface MultiHeadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** Key/value heads (default numHeads); fewer gives grouped-query attention. */
  numKvHeads?: number;
  /** Per-head dim of queries, keys and values (default embedDim / numHeads). */
  headDim?: number;
  /** Features of the key / value inputs for cross-attention (default embedDim). */
  kDim?: number;
  vDim?: number;
  /** Whether the projections have biases (default true): then every bias must be given, else none. */
  bias?: boolean;
  /**
   * true (default): inputs and output are [B, S, E]. false: [S, B, E], PyTorch's
   * nn.MultiheadAttention default. Only the memory order differs; results are the same.
   */
  batchFirst?: boolean;
  weights: SeparateWeights | PackedWeights;
  /** Projections and attention: 'auto' (default), 'cpu' (native or throw) or 'js'. */
  backend?: 'auto' | 'cpu' | 'js';
}

/** Attention options a forward pass takes (masks, scale, …); layout and outputs are the module's. */
export type MultiHeadForwardOptions = Omit<AttentionOptions, 'layout' | 'out' | 'returnLse' | 'backend' | 'device'> & {
  /**
   * Incremental self-attention: this step's keys and values are appended to the cache, and the
   * queries attend to everything cached (causal 'lower-right', the cache's window). The cache
   * must be float32 with the module's batch, numKvHeads and headDim.
   */
  cache?: KVCache;
};

const MODULE_OPTIONS: Record<keyof MultiHeadAttentionOptions, true> = {
  embedDim: true, numHeads: true, numKvHeads: true, headDim: true, kDim: true, vDim: true, bias: true,
  batchFirst: true, weights: true, backend: true,
};
const SEPARATE_WEIGHTS: Record<keyof SeparateWeights, true> = {
  q: true, k: true, v: true, o: true, qBias: true, kBias: true, vBias: true, oBias: true,
};
const PACKED_WEIGHTS: Record<keyof PackedWeights, true> = { qkv: true, qkvBias: true, o: true, oBias: true };
/** Attention options forward() sets itself: the layout and outputs are the module's, the backend is chosen at construction. */
const MODULE_CONTROLLED = ['layout', 'out', 'returnLse', 'backend', 'device'] as const;
const FORWARD_OPTION_KEYS = [...ATTENTION_OPTION_KEYS.filter((k) => !(MODULE_CONTROLLED as readonly string[]).includes(k)), 'cache'];

function positive(x: unknown, name: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) {
    throw new RangeError(`qkv: MultiHeadAttention: ${name} must be a positive integer, got ${show(x)}`);
  }
  return x;
}

function weight(x: unknown, name: string, rows: number, cols: number): Float32Array {
  if (!(x instanceof Float32Array)) throw new TypeError(`qkv: MultiHeadAttention: weights.${name} must be a Float32Array, got ${describe(x)}`);
  if (x.length !== rows * cols) {
    throw new RangeError(`qkv: MultiHeadAttention: weights.${name} must hold [${rows}, ${cols}] = ${rows * cols} floats, got ${x.length}`);
  }
  return x;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class MultiHeadAttention {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly kDim: number;
  readonly vDim: number;
  readonly batchFirst: boolean;
  readonly backend: 'auto' | 'cpu' | 'js';
  readonly #w: { q: Float32Array; k: Float32Array; v: Float32Array; qb?: Float32Array; kb?: Float32Array; vb?: Float32Array };
  #fused: Linear | null = null; // [Q; K; V] over the same input (self-attention)
  #cross: { q: Linear; k: Linear; v: Linear } | null = null;
  readonly #out: Linear;
  // Intermediate buffers reused across calls (forward is synchronous): fresh large arrays
  // come back as new pages, and faulting those in can cost as much as the projection itself.
  readonly #scratch: Float32Array[] = [];

  constructor(options: MultiHeadAttentionOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('qkv: MultiHeadAttention: options must be an object');
    checkKeys(options, Object.keys(MODULE_OPTIONS), 'MultiHeadAttention: options');
    const E = (this.embedDim = positive(options.embedDim, 'embedDim'));
    const Hq = (this.numHeads = positive(options.numHeads, 'numHeads'));
    const Hkv = (this.numKvHeads = positive(options.numKvHeads ?? Hq, 'numKvHeads'));
    if (Hq % Hkv !== 0) throw new RangeError(`qkv: MultiHeadAttention: numHeads (${Hq}) must be a multiple of numKvHeads (${Hkv})`);
    if (options.headDim === undefined && E % Hq !== 0) {
      throw new RangeError(`qkv: MultiHeadAttention: embedDim (${E}) is not divisible by numHeads (${Hq}); give headDim`);
    }
    const hd = (this.headDim = positive(options.headDim ?? E / Hq, 'headDim'));
    this.kDim = positive(options.kDim ?? E, 'kDim');
    this.vDim = positive(options.vDim ?? E, 'vDim');
    this.batchFirst = options.batchFirst ?? true;
    this.backend = options.backend ?? 'auto';
    const withBias = options.bias ?? true;
    const w = options.weights;
    if (w === null || typeof w !== 'object') throw new TypeError('qkv: MultiHeadAttention: weights must be an object');
    checkKeys(w, Object.keys('qkv' in w ? PACKED_WEIGHTS : SEPARATE_WEIGHTS), 'MultiHeadAttention: weights');
    const bias = (x: unknown, name: string, n: number): Float32Array | undefined => {
      if (!withBias) {
        if (x !== undefined) throw new TypeError(`qkv: MultiHeadAttention: weights.${name} given but bias is false`);
        return undefined;
      }
      if (x === undefined) throw new TypeError(`qkv: MultiHeadAttention: weights.${name} is missing (bias is true; pass bias: false for none)`);
      return weight(x, name, n, 1).slice();
    };
    const [nq, nkv] = [Hq * hd, Hkv * hd];
    if ('qkv' in w) {
      if (this.kDim !== E || this.vDim !== E) throw new RangeError('qkv: MultiHeadAttention: packed qkv weights need kDim = vDim = embedDim');
      // Copied: the layer must not change when the caller's arrays do.
      const qkv = weight(w.qkv, 'qkv', nq + 2 * nkv, E).slice();
      const b = bias(w.qkvBias, 'qkvBias', nq + 2 * nkv);
      this.#w = {
        q: qkv.subarray(0, nq * E),
        k: qkv.subarray(nq * E, (nq + nkv) * E),
        v: qkv.subarray((nq + nkv) * E),
        qb: b?.subarray(0, nq),
        kb: b?.subarray(nq, nq + nkv),
        vb: b?.subarray(nq + nkv),
      };
    } else {
      this.#w = {
        q: weight(w.q, 'q', nq, E).slice(),
        k: weight(w.k, 'k', nkv, this.kDim).slice(),
        v: weight(w.v, 'v', nkv, this.vDim).slice(),
        qb: bias(w.qBias, 'qBias', nq),
        kb: bias(w.kBias, 'kBias', nkv),
        vb: bias(w.vBias, 'vBias', nkv),
      };
    }
    const o = weight(w.o, 'o', E, nq);
    this.#out = new Linear(o, E, nq, { bias: bias(w.oBias, 'oBias', E), backend: this.backend });
    if (this.kDim === E && this.vDim === E) {
      const { q, k, v, qb, kb, vb } = this.#w;
      this.#fused = new Linear(concat([q, k, v]), nq + 2 * nkv, E, {
        bias: qb ? concat([qb, kb!, vb!]) : undefined,
        backend: this.backend,
      });
    }
  }

  /**
   * query [B, Sq, E] (or [Sq, B, E] with batchFirst false). Self-attention when key and value
   * are omitted (or are the query itself): one fused projection GEMM. Cross-attention:
   * key [B, Skv, kDim], value [B, Skv, vDim]. Returns [B, Sq, E] (or [Sq, B, E]), float32.
   */
  forward(query: TensorLike<Float32Array>, key?: TensorLike<Float32Array>, value?: TensorLike<Float32Array>, options: MultiHeadForwardOptions = {}): Tensor<Float32Array> {
    const selfAttention = (key === undefined && value === undefined) || (key === query && value === query);
    if (!selfAttention && (key === undefined || value === undefined)) {
      throw new TypeError('qkv: MultiHeadAttention.forward: give both key and value, or neither (self-attention)');
    }
    optionsObject(options, 'MultiHeadAttention.forward: options');
    for (const key of MODULE_CONTROLLED) {
      if (key in options) {
        throw new TypeError(
          `qkv: MultiHeadAttention.forward: options.${key} is set by the layer itself and cannot be given ` +
            '(the layout and outputs are its own; choose the backend at construction)',
        );
      }
    }
    checkKeys(options, FORWARD_OPTION_KEYS, 'MultiHeadAttention.forward: options');
    const { cache, ...attentionOptions } = options;
    const x = this.#input(query, 'query', this.embedDim);
    const [B, Sq] = x.bs;
    const [Hq, Hkv, hd] = [this.numHeads, this.numKvHeads, this.headDim];
    const M = B * Sq;
    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (selfAttention) {
      const N = (Hq + 2 * Hkv) * hd;
      const y = this.#fused!.forward(x.data, M, this.#buffer(0, M * N));
      q = this.#heads(y, Hq, B, Sq, N, 0);
      k = this.#heads(y, Hkv, B, Sq, N, Hq * hd);
      v = this.#heads(y, Hkv, B, Sq, N, (Hq + Hkv) * hd);
    } else {
      if (cache) throw new TypeError('qkv: MultiHeadAttention.forward: options.cache is for self-attention only');
      const kx = this.#input(key!, 'key', this.kDim);
      const vx = this.#input(value!, 'value', this.vDim);
      if (kx.bs[0] !== B || vx.bs[0] !== B || kx.bs[1] !== vx.bs[1]) {
        throw new RangeError(
          `qkv: MultiHeadAttention.forward: query ${formatShape(x.shape)}, key ${formatShape(kx.shape)} and value ` +
            `${formatShape(vx.shape)} must share the batch, and key and value the sequence length`,
        );
      }
      const Skv = kx.bs[1];
      const p = this.#crossProjections();
      q = this.#heads(p.q.forward(x.data, M, this.#buffer(0, M * Hq * hd)), Hq, B, Sq, Hq * hd, 0);
      k = this.#heads(p.k.forward(kx.data, B * Skv, this.#buffer(1, B * Skv * Hkv * hd)), Hkv, B, Skv, Hkv * hd, 0);
      v = this.#heads(p.v.forward(vx.data, B * Skv, this.#buffer(2, B * Skv * Hkv * hd)), Hkv, B, Skv, Hkv * hd, 0);
    }
    // Attention writes straight into [B·Sq, Hq·hd] rows (in the input's order) for the output projection.
    const merged = this.#buffer(3, M * Hq * hd);
    const out = this.#heads(merged, Hq, B, Sq, Hq * hd, 0);
    const backend = this.backend;
    if (cache) {
      if (cache.dtype !== 'float32' || cache.batch !== B || cache.heads !== Hkv || cache.headDim !== hd || cache.valueDim !== hd) {
        throw new RangeError(
          `qkv: MultiHeadAttention.forward: options.cache must be float32 [batch ${B}, heads ${Hkv}, headDim ${hd}], ` +
            `got ${cache.dtype} [batch ${cache.batch}, heads ${cache.heads}, headDim ${cache.headDim}, valueDim ${cache.valueDim}]`,
        );
      }
      cache.attend(q, k, v, { ...attentionOptions, out, backend });
    } else {
      attention(q as Tensor<Float32Array>, k as Tensor<Float32Array>, v as Tensor<Float32Array>, { ...attentionOptions, out, backend });
    }
    const result = this.#out.forward(merged, M);
    return { data: result, shape: [...x.shape.slice(0, 2), this.embedDim], dtype: 'float32' };
  }

  /** Scratch buffer `slot`, at least `length` floats, as a view of exactly `length`. */
  #buffer(slot: number, length: number): Float32Array {
    if (!this.#scratch[slot] || this.#scratch[slot].length < length) this.#scratch[slot] = new Float32Array(length);
    return this.#scratch[slot].subarray(0, length);
  }

  /** Validates a [B, S, F] (or [S, B, F]) float32 input; returns contiguous data, B and S. */
  #input(t: TensorLike<Float32Array>, name: string, features: number): { data: Float32Array; bs: [number, number]; shape: number[] } {
    const checked = checkTensor(t, `MultiHeadAttention.forward(${name})`);
    const order = this.batchFirst ? '[B, S, F]' : '[S, B, F]';
    if (checked.dtype !== 'float32') {
      throw new TypeError(`qkv: MultiHeadAttention.forward: ${name} must be float32, got ${checked.dtype}`);
    }
    if (checked.shape.length !== 3 || checked.shape[2] !== features) {
      throw new RangeError(
        `qkv: MultiHeadAttention.forward: ${name} must be ${order} with F = ${features}, got ${formatShape(checked.shape)}`,
      );
    }
    const [a, b] = checked.shape;
    return { data: contiguousData(checked) as Float32Array, bs: this.batchFirst ? [a, b] : [b, a], shape: [...checked.shape] };
  }

  /**
   * Heads [B, H, S, hd] as a strided view of rows of width `n` (row order (b, s), or (s, b)
   * when not batch-first), starting at column `offset`.
   */
  #heads(rows: Float32Array, H: number, B: number, S: number, n: number, offset: number): Tensor<Float32Array> {
    const hd = this.headDim;
    const strides = this.batchFirst ? [S * n, hd, n, 1] : [n, hd, B * n, 1];
    return { data: rows.subarray(offset), shape: [B, H, S, hd], dtype: 'float32', strides };
  }

  #crossProjections(): { q: Linear; k: Linear; v: Linear } {
    if (!this.#cross) {
      const { q, k, v, qb, kb, vb } = this.#w;
      const [nq, nkv] = [this.numHeads * this.headDim, this.numKvHeads * this.headDim];
      const backend = this.backend;
      this.#cross = {
        q: new Linear(q, nq, this.embedDim, { bias: qb, backend }),
        k: new Linear(k, nkv, this.kDim, { bias: kb, backend }),
        v: new Linear(v, nkv, this.vDim, { bias: vb, backend }),
      };
    }
    return this.#cross;
  }
}
