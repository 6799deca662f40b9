// Masking options: validation and normalisation into the form every backend consumes.
import { checkKeys, show } from './options';
import { checkTensor, describe, formatShape, type TensorLike } from './tensor';

export type Causal = boolean | 'upper-left' | 'lower-right';

export interface MaskOptions {
  /**
   * true / 'upper-left': query i sees keys j <= i (PyTorch's is_causal).
   * 'lower-right': aligned to the end of the keys, j <= i + (Skv - Sq): a KV-cache decode step.
   */
  causal?: Causal;
  /**
   * Boolean (Uint8Array, dtype 'bool', nonzero = attend) or additive (Float32Array, added to
   * the score; -Infinity = masked). Any shape broadcastable to [B, Hq, Sq, Skv] (numpy rules,
   * aligned on the right), whatever the layout; strides allowed.
   */
  mask?: TensorLike<Uint8Array | Float32Array>;
  /** Valid key count per batch (right padding): keys j >= keyLengths[b] are masked. */
  keyLengths?: Int32Array | readonly number[];
  /**
   * Sliding window around each query's diagonal: keys diag - left <= j <= diag + right are
   * visible. The diagonal follows `causal`'s alignment (upper-left unless 'lower-right').
   */
  window?: { left?: number; right?: number };
  /** ALiBi: score -= slope[h] * |diag(i) - j|, one slope per query head. */
  alibiSlopes?: Float32Array | readonly number[];
  /** Gemma-2 logit soft-capping: score = softcap * tanh(score / softcap), before bias and mask. */
  softcap?: number;
}

/** The mask options in the binding's form (shared by the native and JS backends). */
export interface NormalizedMask {
  /**
   * The mask geometry every backend and kernel uses: query i's diagonal key is
   * i + diagonalOffset (0: upper-left; Skv - Sq: lower-right), and keys
   * diag - windowLeft <= j <= diag + windowRight are visible (-1: unbounded). Causal is a
   * right edge of 0.
   */
  diagonalOffset: number;
  windowLeft: number;
  windowRight: number;
  mask: { kind: 'boolean' | 'additive'; data: Uint8Array | Float32Array; strides: number[] } | null;
  keyLengths: Int32Array | null;
  alibiSlopes: Float32Array | null;
  softcap: number; // 0: off
}

function windowBound(value: unknown, name: string): number {
  if (value === undefined || value === Infinity) return -1;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`qkv: options.window.${name} must be a non-negative integer or Infinity, got ${show(value)}`);
  }
  return value;
}

/** Broadcast strides of `mask` against [B, H, Sq, Skv]; 0 on broadcast dimensions. */
function broadcastMask(maskLike: unknown, full: readonly number[]): NormalizedMask['mask'] {
  const m = checkTensor(maskLike, 'options.mask');
  if (m.dtype !== 'bool' && m.dtype !== 'float32') {
    throw new TypeError(`qkv: options.mask must be dtype 'bool' (Uint8Array) or 'float32' (Float32Array), got ${m.dtype}`);
  }
  if (m.shape.length > 4) {
    throw new RangeError(`qkv: options.mask: shape ${formatShape(m.shape)} has more than 4 dimensions`);
  }
  const offset = 4 - m.shape.length;
  const strides = [0, 0, 0, 0];
  for (let i = 0; i < m.shape.length; i++) {
    const target = full[offset + i];
    if (m.shape[i] === target) strides[offset + i] = target === 1 ? 0 : m.strides![i];
    else if (m.shape[i] !== 1) {
      throw new RangeError(
        `qkv: options.mask: shape ${formatShape(m.shape)} does not broadcast to [B, Hq, Sq, Skv] = ${formatShape(full)}`,
      );
    }
  }
  return { kind: m.dtype === 'bool' ? 'boolean' : 'additive', data: m.data as Uint8Array | Float32Array, strides };
}

function toTypedArray<T extends Int32Array | Float32Array>(
  value: unknown,
  ctor: { new (n: ArrayLike<number>): T; name: string },
  name: string,
  length: number,
): T {
  let array: T;
  if (value instanceof ctor) array = value;
  else if (Array.isArray(value)) array = new ctor(value as number[]);
  else throw new TypeError(`qkv: options.${name} must be a ${ctor.name} or an array of numbers, got ${describe(value)}`);
  if (array.length !== length) {
    throw new RangeError(`qkv: options.${name} must have ${length} entries, got ${array.length}`);
  }
  return array;
}

/** Validates mask options for q [B, Hq, Sq, ·] against keys of length Skv. */
export function normalizeMask(options: MaskOptions, B: number, Hq: number, Sq: number, Skv: number): NormalizedMask {
  const c = options.causal ?? false;
  if (c !== true && c !== false && c !== 'upper-left' && c !== 'lower-right') {
    throw new TypeError(`qkv: options.causal must be a boolean, 'upper-left' or 'lower-right', got ${show(c)}`);
  }
  let windowLeft = -1;
  let windowRight = -1;
  if (options.window !== undefined) {
    if (options.window === null || typeof options.window !== 'object') {
      throw new TypeError(`qkv: options.window must be {left?, right?}, got ${describe(options.window)}`);
    }
    checkKeys(options.window, ['left', 'right'], 'options.window');
    windowLeft = windowBound(options.window.left, 'left');
    windowRight = windowBound(options.window.right, 'right');
  }

  let keyLengths: Int32Array | null = null;
  if (options.keyLengths !== undefined) {
    keyLengths = toTypedArray(options.keyLengths, Int32Array, 'keyLengths', B);
    const given = options.keyLengths as ArrayLike<number>;
    keyLengths.forEach((len, b) => {
      if (given[b] !== len || len < 0 || len > Skv) {
        throw new RangeError(`qkv: options.keyLengths[${b}] = ${given[b]} must be an integer in [0, ${Skv}]`);
      }
    });
  }

  let alibiSlopes: Float32Array | null = null;
  if (options.alibiSlopes !== undefined) {
    alibiSlopes = toTypedArray(options.alibiSlopes, Float32Array, 'alibiSlopes', Hq);
    alibiSlopes.forEach((s, h) => {
      if (!Number.isFinite(s)) throw new RangeError(`qkv: options.alibiSlopes[${h}] must be finite, got ${s}`);
    });
  }

  // Kernels use float32: a softcap that rounds to 0 there would silently switch it off.
  let softcap = 0;
  if (options.softcap !== undefined) {
    const x = options.softcap;
    if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(Math.fround(x)) || Math.fround(x) === 0) {
      throw new RangeError(
        `qkv: options.softcap must be a float32 number in [1.401298464324817e-45, 3.4028234663852886e38], got ${show(x)}`,
      );
    }
    softcap = Math.fround(x);
  }

  if (c !== false) windowRight = 0; // causal: nothing right of the diagonal
  return {
    diagonalOffset: c === 'lower-right' ? Skv - Sq : 0,
    windowLeft,
    windowRight,
    mask: options.mask === undefined ? null : broadcastMask(options.mask, [B, Hq, Sq, Skv]),
    keyLengths,
    alibiSlopes,
    softcap,
  };
}
