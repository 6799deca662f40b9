// A preallocated key/value cache for incremental decoding: append the new tokens' K and V,
// then attend with causal 'lower-right' (each new query sees every cached key up to itself).
import { prepare, runPrepared, runPreparedAsync, type AttentionOptions, type AttentionResult, type PreparedCall } from './attention';
import { checkKeys, optionsObject, show } from './options';
import {
  allocate,
  ATTENTION_DTYPES,
  bytesOf,
  checkTensor,
  float16Bits,
  formatShape,
  isFloat16Array,
  type DType,
  type Tensor,
  type TensorData,
  type TensorLike,
} from './tensor';

export interface KVCacheOptions {
  batch: number;
  /** Key/value heads (Hkv). */
  heads: number;
  headDim: number;
  /** Value head dim (default headDim). */
  valueDim?: number;
  /** Tokens the cache holds at most (with `window`: the window plus the largest chunk appended at once, at least). */
  capacity: number;
  dtype?: DType;
  /**
   * Sliding window: keep only what the next queries can see, i.e. the last `window` tokens
   * before each append (Mistral-style local attention: query p sees keys p - window … p).
   * Older tokens are evicted by moving the kept ones to the front now and then, never per token.
   */
  window?: number;
  /** Back the cache with a SharedArrayBuffer (default true): attentionAsync then reads it in place, without copying. */
  shared?: boolean;
}

const KV_CACHE_OPTIONS: Record<keyof KVCacheOptions, true> = {
  batch: true, heads: true, headDim: true, valueDim: true, capacity: true, dtype: true, window: true, shared: true,
};
const KV_CACHE_OPTION_KEYS = Object.keys(KV_CACHE_OPTIONS);

function positiveInt(value: unknown, name: string, min = 1): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`qkv: KVCache: ${name} must be an integer >= ${min}, got ${show(value)}`);
  }
  return value;
}

export class KVCache {
  readonly batch: number;
  readonly heads: number;
  readonly headDim: number;
  readonly valueDim: number;
  readonly capacity: number;
  readonly dtype: DType;
  readonly window: number | undefined;
  /** Keys [B, Hkv, capacity, D] and values [B, Hkv, capacity, Dv], allocated once. */
  readonly keyData: TensorData;
  readonly valueData: TensorData;
  private stored = 0;
  private evicted = 0;

  constructor(options: KVCacheOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('qkv: KVCache: options must be an object');
    checkKeys(options, KV_CACHE_OPTION_KEYS, 'KVCache: options');
    this.batch = positiveInt(options.batch, 'batch');
    this.heads = positiveInt(options.heads, 'heads');
    this.headDim = positiveInt(options.headDim, 'headDim');
    this.valueDim = options.valueDim === undefined ? this.headDim : positiveInt(options.valueDim, 'valueDim');
    this.capacity = positiveInt(options.capacity, 'capacity');
    this.dtype = options.dtype ?? 'float32';
    if (!ATTENTION_DTYPES.includes(this.dtype)) {
      throw new TypeError(`qkv: KVCache: dtype must be one of ${ATTENTION_DTYPES.map(show).join(', ')}, got ${show(this.dtype)}`);
    }
    if (options.window !== undefined) {
      this.window = positiveInt(options.window, 'window', 0);
      if (this.window >= this.capacity) {
        throw new RangeError(`qkv: KVCache: capacity (${this.capacity}) must exceed window (${this.window}) to leave room for new tokens`);
      }
    }
    const shared = options.shared ?? true;
    const make = (dim: number): TensorData => {
      const length = this.batch * this.heads * this.capacity * dim;
      if (!shared) return allocate(this.dtype, length);
      const bytes = length * bytesOf(this.dtype);
      return this.dtype === 'float32' ? new Float32Array(new SharedArrayBuffer(bytes)) : new Uint16Array(new SharedArrayBuffer(bytes));
    };
    this.keyData = make(this.headDim);
    this.valueData = make(this.valueDim);
  }

  /** Tokens currently cached (at most `capacity`). */
  get length(): number {
    return this.stored;
  }

  /** Tokens appended since the last reset, evicted ones included: the next token's position. */
  get position(): number {
    return this.evicted + this.stored;
  }

  /** Cached keys as a [B, Hkv, length, D] view (no copy). */
  keys(): Tensor {
    return this.view(this.keyData, this.headDim);
  }

  /** Cached values as a [B, Hkv, length, Dv] view (no copy). */
  values(): Tensor {
    return this.view(this.valueData, this.valueDim);
  }

  /** Forgets every token; the memory is kept. */
  reset(): void {
    this.#idle('reset');
    this.stored = 0;
    this.evicted = 0;
  }

  /**
   * Copies T new tokens in: k [B, Hkv, T, D] and v [B, Hkv, T, Dv] (any strides), in the
   * cache's dtype. With a window, tokens no later query can see are evicted first.
   */
  append(k: TensorLike, v: TensorLike): void {
    this.#idle('append');
    this.#commit(this.#plan(k, v));
  }

  /**
   * Appends the step's K and V, then attends q [B, Hq, T, D] to everything cached with causal
   * 'lower-right' (and the cache's window). Other options pass through to attention().
   * Everything is validated before the cache changes: a call that throws leaves it as it was.
   */
  attend(q: TensorLike, k: TensorLike, v: TensorLike, options: AttentionOptions = {}): Tensor | AttentionResult {
    this.#idle('attend');
    const plan = this.#plan(k, v);
    const prepared = this.#prepare(q, plan, options);
    this.#commit(plan);
    return runPrepared(prepared);
  }

  /**
   * attend() off the JS thread; a shared cache (the default) is read in place. Until its
   * promise settles the cache must not change (the call reads it), so append, attend,
   * attendAsync and reset throw meanwhile: await each step before the next.
   */
  attendAsync(q: TensorLike, k: TensorLike, v: TensorLike, options: AttentionOptions = {}): Promise<Tensor | AttentionResult> {
    let prepared: PreparedCall;
    try {
      this.#idle('attendAsync');
      const plan = this.#plan(k, v);
      prepared = this.#prepare(q, plan, options);
      this.#commit(plan);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#inFlight++;
    return runPreparedAsync(prepared).finally(() => this.#inFlight--);
  }

  /** attendAsync calls not settled yet. */
  #inFlight = 0;

  #idle(method: string): void {
    if (this.#inFlight > 0) {
      throw new Error(
        `qkv: KVCache.${method}: ${this.#inFlight} attendAsync call(s) on this cache have not settled; ` +
          'the cache cannot change while a call reads it: await each step before the next',
      );
    }
  }

  /** Validates an append of k and v without changing anything; #commit carries it out. */
  #plan(k: TensorLike, v: TensorLike): { kt: Tensor; vt: Tensor; kept: number } {
    const kt = this.incoming(k, 'k', this.headDim);
    const vt = this.incoming(v, 'v', this.valueDim);
    const T = kt.shape[2];
    if (vt.shape[2] !== T) {
      throw new RangeError(`qkv: KVCache.append: k and v hold different token counts: ${formatShape(kt.shape)} vs ${formatShape(vt.shape)}`);
    }
    let kept = this.stored;
    if (this.stored + T > this.capacity) {
      if (this.window === undefined) {
        throw new RangeError(
          `qkv: KVCache.append: ${T} more tokens exceed the capacity (${this.capacity}, ${this.stored} stored); ` +
            'make the cache larger or give it a window',
        );
      }
      kept = Math.min(this.stored, this.window);
      if (kept + T > this.capacity) {
        throw new RangeError(
          `qkv: KVCache.append: ${T} tokens at once do not fit beside the window of ${this.window} ` +
            `(capacity ${this.capacity}); append fewer at a time or make the cache larger`,
        );
      }
    }
    return { kt, vt, kept };
  }

  #commit({ kt, vt, kept }: { kt: Tensor; vt: Tensor; kept: number }): void {
    if (kept < this.stored) this.evict(kept);
    this.copyIn(kt, this.keyData, this.headDim);
    this.copyIn(vt, this.valueData, this.valueDim);
    this.stored += kt.shape[2];
  }

  /** The attention call over the cache as it will be after the planned append. */
  #prepare(q: TensorLike, plan: { kt: Tensor; kept: number }, options: AttentionOptions): PreparedCall {
    const length = plan.kept + plan.kt.shape[2];
    return prepare(
      q as TensorLike<Float32Array>,
      this.view(this.keyData, this.headDim, length) as TensorLike<Float32Array>,
      this.view(this.valueData, this.valueDim, length) as TensorLike<Float32Array>,
      this.attentionOptions(options),
    );
  }

  private attentionOptions(options: AttentionOptions): AttentionOptions {
    optionsObject(options, 'KVCache.attend: options');
    if (options.layout !== undefined && options.layout !== 'bhsd') {
      throw new RangeError("qkv: KVCache.attend: q must use layout 'bhsd' (the cache's layout)");
    }
    if (options.causal !== undefined && options.causal !== true && options.causal !== 'lower-right') {
      throw new RangeError(
        `qkv: KVCache.attend: options.causal is always 'lower-right' over a cache (each query sees the cached keys up to itself), got ${show(options.causal)}`,
      );
    }
    return {
      ...options,
      causal: 'lower-right',
      ...(this.window !== undefined ? { window: { ...options.window, left: this.window } } : {}),
    };
  }

  private view(data: TensorData, dim: number, length = this.stored): Tensor {
    return {
      data,
      dtype: this.dtype,
      shape: [this.batch, this.heads, length, dim],
      strides: [this.heads * this.capacity * dim, this.capacity * dim, dim, 1],
    };
  }

  private incoming(x: TensorLike, name: string, dim: number): Tensor {
    const t = checkTensor(x, `KVCache.append(${name})`);
    if (t.dtype !== this.dtype) throw new TypeError(`qkv: KVCache.append: ${name} must be ${this.dtype}, got ${t.dtype}`);
    const s = t.shape;
    if (s.length !== 4 || s[0] !== this.batch || s[1] !== this.heads || s[3] !== dim) {
      throw new RangeError(
        `qkv: KVCache.append: ${name} must be [${this.batch}, ${this.heads}, T, ${dim}], got ${formatShape(s)}`,
      );
    }
    return t;
  }

  /** Keeps the last `kept` tokens at the front (moving them once, not per token). */
  private evict(kept: number): void {
    const drop = this.stored - kept;
    for (const [data, dim] of [
      [this.keyData, this.headDim],
      [this.valueData, this.valueDim],
    ] as const) {
      for (let bh = 0; bh < this.batch * this.heads; bh++) {
        const base = bh * this.capacity * dim;
        data.copyWithin(base, base + drop * dim, base + this.stored * dim);
      }
    }
    this.stored = kept;
    this.evicted += drop;
  }

  private copyIn(t: Tensor, data: TensorData, dim: number): void {
    const [B, H, T] = t.shape;
    const [sb, sh, ss, sd] = t.strides!;
    const src = isFloat16Array(t.data) ? float16Bits(t.data) : t.data; // float16 is copied as bits
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++) {
          const to = ((b * this.heads + h) * this.capacity + this.stored + i) * dim;
          const from = b * sb + h * sh + i * ss;
          if (sd === 1) data.set(src.subarray(from, from + dim), to);
          else for (let d = 0; d < dim; d++) data[to + d] = src[from + d * sd];
        }
  }
}
