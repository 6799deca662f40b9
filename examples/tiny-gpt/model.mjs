// A tiny GPT-style decoder (token + position embeddings, pre-LayerNorm blocks of causal
// multi-head attention with GQA and a GELU MLP, a linear output head) on deterministic
// random weights. The qkv namespace is passed in, so the same model runs from the example
// (import 'qkv') and from the tests (the library's source).

/** Seeded uniform floats in [-scale, scale) (mulberry32). */
function randoms(seed, n, scale) {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

export const DEFAULT_CONFIG = { vocab: 256, embedDim: 128, numHeads: 4, numKvHeads: 2, layers: 4, maxSeq: 256, seed: 1 };

function layerNorm(x, rows, E, gain, bias) {
  const out = new Float32Array(rows * E);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let e = 0; e < E; e++) mean += x[r * E + e];
    mean /= E;
    let variance = 0;
    for (let e = 0; e < E; e++) variance += (x[r * E + e] - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / E + 1e-5);
    for (let e = 0; e < E; e++) out[r * E + e] = (x[r * E + e] - mean) * inv * gain[e] + bias[e];
  }
  return out;
}

function gelu(x) {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
  }
  return x;
}

function addInto(x, y) {
  for (let i = 0; i < x.length; i++) x[i] += y[i];
}

export class TinyGPT {
  /** backend: 'auto' | 'cpu' | 'js' for every projection and attention. */
  constructor(qkv, config = DEFAULT_CONFIG, backend = 'auto') {
    const { vocab, embedDim: E, numHeads, numKvHeads, layers, maxSeq, seed } = { ...DEFAULT_CONFIG, ...config };
    Object.assign(this, { qkv, vocab, E, numHeads, numKvHeads, maxSeq, headDim: E / numHeads });
    let s = seed * 1000;
    const next = (n, scale) => randoms(++s, n, scale);
    this.tokenEmbedding = next(vocab * E, 0.5);
    this.positionEmbedding = next(maxSeq * E, 0.1);
    const kvDim = numKvHeads * (E / numHeads);
    this.blocks = Array.from({ length: layers }, () => ({
      ln1: [Float32Array.from(next(E, 0.1), (v) => 1 + v), next(E, 0.1)],
      attention: new qkv.MultiHeadAttention({
        embedDim: E,
        numHeads,
        numKvHeads,
        backend,
        weights: {
          q: next(E * E, 1 / Math.sqrt(E)), k: next(kvDim * E, 1 / Math.sqrt(E)), v: next(kvDim * E, 1 / Math.sqrt(E)),
          o: next(E * E, 1 / Math.sqrt(E)), qBias: next(E, 0.02), kBias: next(kvDim, 0.02), vBias: next(kvDim, 0.02), oBias: next(E, 0.02),
        },
      }),
      ln2: [Float32Array.from(next(E, 0.1), (v) => 1 + v), next(E, 0.1)],
      up: new qkv.Linear(next(4 * E * E, 1 / Math.sqrt(E)), 4 * E, E, { bias: next(4 * E, 0.02), backend }),
      down: new qkv.Linear(next(E * 4 * E, 1 / Math.sqrt(4 * E)), E, 4 * E, { bias: next(E, 0.02), backend }),
    }));
    this.lnFinal = [Float32Array.from(next(E, 0.1), (v) => 1 + v), next(E, 0.1)];
    this.unembed = new qkv.Linear(next(vocab * E, 2 / Math.sqrt(E)), vocab, E, { backend });
  }

  /** One KVCache per layer, for incremental decoding. */
  newCaches(capacity = this.maxSeq) {
    return this.blocks.map(() => new this.qkv.KVCache({ batch: 1, heads: this.numKvHeads, headDim: this.headDim, capacity }));
  }

  /**
   * Logits [T, vocab] for `tokens` at positions start … start + T − 1. With caches, the
   * tokens extend what the caches hold (start = tokens already cached); without, `tokens`
   * is the whole sequence and start must be 0.
   */
  forward(tokens, caches = null) {
    const { E } = this;
    const T = tokens.length;
    const start = caches ? caches[0].position : 0;
    if (start + T > this.maxSeq) throw new RangeError(`sequence longer than maxSeq (${this.maxSeq})`);
    let x = new Float32Array(T * E);
    for (let t = 0; t < T; t++)
      for (let e = 0; e < E; e++) x[t * E + e] = this.tokenEmbedding[tokens[t] * E + e] + this.positionEmbedding[(start + t) * E + e];
    this.blocks.forEach((block, layer) => {
      const h = layerNorm(x, T, E, ...block.ln1);
      const options = caches ? { cache: caches[layer] } : { causal: true };
      addInto(x, block.attention.forward({ data: h, shape: [1, T, E] }, undefined, undefined, options).data);
      const m = block.down.forward(gelu(block.up.forward(layerNorm(x, T, E, ...block.ln2), T)), T);
      addInto(x, m);
    });
    x = layerNorm(x, T, E, ...this.lnFinal);
    return this.unembed.forward(x, T);
  }

  /** Greedy decoding: the prompt in one prefill step, then one token per step from the caches. */
  generate(prompt, steps) {
    const caches = this.newCaches();
    let logits = this.forward(prompt, caches);
    const out = [];
    for (let i = 0; i < steps; i++) {
      const token = argmaxLast(logits, this.vocab);
      out.push(token);
      if (i + 1 < steps) logits = this.forward([token], caches);
    }
    return out;
  }
}

/** The argmax of the last row of [T, vocab] logits. */
export function argmaxLast(logits, vocab) {
  const row = logits.subarray(logits.length - vocab);
  let best = 0;
  for (let i = 1; i < vocab; i++) if (row[i] > row[best]) best = i;
  return best;
}
