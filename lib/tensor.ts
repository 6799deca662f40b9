// Tensors are plain objects over typed arrays: {data, shape, dtype, strides?}. Strides are
// in elements; a view (split heads, a slice of a packed projection) is new strides over the
// same data, never a copy.
import { optionsObject, show } from './options';

/**
 * Element types of q, k, v and out. float16/bfloat16 data are raw bits in a Uint16Array;
 * float16 may also come as a Float16Array where the runtime has one.
 */
export type DType = 'float32' | 'float16' | 'bfloat16';
/** Element types a mask may have: 'bool' (Uint8Array, nonzero = attend) or additive 'float32'. */
export type MaskDType = 'bool' | 'float32';

export type TensorData = Float32Array | Uint16Array | Uint8Array;

export interface Tensor<D extends TensorData = TensorData> {
  readonly data: D;
  readonly shape: readonly number[];
  readonly dtype: DType | MaskDType;
  /** Element strides, one per dimension; contiguous row-major when absent. */
  readonly strides?: readonly number[];
}

/** What the API accepts: a Tensor, or {data, shape} whose dtype is inferred from the array. */
export interface TensorLike<D extends TensorData = TensorData> {
  readonly data: D;
  readonly shape: readonly number[];
  readonly dtype?: DType | MaskDType;
  readonly strides?: readonly number[];
}

/** A 4-D view in logical [B, H, S, D] order, validated: what the backends consume. */
export interface View4 {
  /** Host data; an empty placeholder when the view is `resident`. */
  readonly data: TensorData;
  /** The binding's handle when the tensor lives in CUDA device memory (a DeviceTensor). */
  readonly resident?: unknown;
  /** Its CUDA device, when resident. */
  readonly device?: number;
  readonly dtype: DType | MaskDType;
  readonly shape: [number, number, number, number];
  readonly strides: [number, number, number, number];
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The runtime's Float16Array, where it has one (Node 20 does not). Looked up per call. */
export function float16ArrayClass(): (new (...args: never[]) => ArrayBufferView) | undefined {
  return (globalThis as { Float16Array?: new (...args: never[]) => ArrayBufferView }).Float16Array;
}

/** True for a Float16Array (whose elements are read as numbers, not bits). */
export function isFloat16Array(data: unknown): data is ArrayBufferView & { length: number } {
  const F16 = float16ArrayClass();
  return F16 !== undefined && data instanceof F16;
}

/** The raw float16 bits of a Float16Array, as the backends read them (no copy). */
export function float16Bits(data: ArrayBufferView & { length: number }): Uint16Array {
  return new Uint16Array(data.buffer, data.byteOffset, data.length);
}

function inferDType(data: unknown, name: string): DType | MaskDType {
  if (data instanceof Float32Array) return 'float32';
  if (isFloat16Array(data)) return 'float16';
  if (data instanceof Uint8Array) return 'bool';
  if (data instanceof Uint16Array) {
    throw new TypeError(`qkv: ${name}: a Uint16Array holds float16 or bfloat16 bits; say which with dtype`);
  }
  throw new TypeError(`qkv: ${name}.data must be a Float32Array, Uint16Array or Uint8Array, got ${describe(data)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return (value as object).constructor?.name ?? 'object';
}

/** Every fact about an element type, in one table: its array, its size, whether q/k/v/out may have it. */
const arrayTypeOf: Record<DType | MaskDType, { ctor: new (n: number) => TensorData; label: string; bytes: number; attention: boolean }> = {
  float32: { ctor: Float32Array, label: 'Float32Array', bytes: 4, attention: true },
  float16: { ctor: Uint16Array, label: 'Uint16Array', bytes: 2, attention: true },
  bfloat16: { ctor: Uint16Array, label: 'Uint16Array', bytes: 2, attention: true },
  bool: { ctor: Uint8Array, label: 'Uint8Array', bytes: 1, attention: false },
};

/** The dtypes q, k, v and out (and KV caches and device tensors) may have. */
export const ATTENTION_DTYPES = (Object.keys(arrayTypeOf) as (DType | MaskDType)[]).filter((d) => arrayTypeOf[d].attention) as DType[];

/** Bytes per element of `dtype`. */
export function bytesOf(dtype: DType | MaskDType): number {
  return arrayTypeOf[dtype].bytes;
}

/** Allocates a zero-filled typed array of `length` elements for `dtype`. */
export function allocate(dtype: DType | MaskDType, length: number): TensorData {
  return new arrayTypeOf[dtype].ctor(length);
}

function checkDims(values: unknown, name: string, what: 'shape' | 'strides'): number[] {
  if (!Array.isArray(values) && !ArrayBuffer.isView(values)) {
    throw new TypeError(`qkv: ${name}.${what} must be an array of integers, got ${describe(values)}`);
  }
  const list = Array.from(values as ArrayLike<unknown>);
  list.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`qkv: ${name}.${what}[${i}] must be a non-negative integer, got ${show(d)}`);
    }
  });
  return list as number[];
}

/**
 * Validates a tensor: typed array kind matches dtype, shape and strides are non-negative
 * integers, and every element the view reaches lies inside `data`.
 */
export function checkTensor(t: unknown, name: string): Tensor {
  if (t === null || typeof t !== 'object') {
    throw new TypeError(`qkv: ${name} must be a tensor {data, shape, dtype?, strides?}, got ${describe(t)}`);
  }
  const like = t as TensorLike;
  const dtype = like.dtype ?? inferDType(like.data, name);
  const kind = arrayTypeOf[dtype];
  if (!kind) throw new TypeError(`qkv: ${name}.dtype must be one of ${Object.keys(arrayTypeOf).join(', ')}, got ${show(dtype)}`);
  if (!(like.data instanceof kind.ctor) && !(dtype === 'float16' && isFloat16Array(like.data))) {
    throw new TypeError(`qkv: ${name}: dtype ${dtype} needs its data in a ${kind.label}, got ${describe(like.data)}`);
  }
  const shape = checkDims(like.shape, name, 'shape');
  const strides = like.strides === undefined ? contiguousStrides(shape) : checkDims(like.strides, name, 'strides');
  if (strides.length !== shape.length) {
    throw new RangeError(`qkv: ${name}: strides ${formatShape(strides)} and shape ${formatShape(shape)} differ in rank`);
  }
  let reach = 0;
  let empty = false;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 0) empty = true;
    reach += strides[i] * (shape[i] - 1);
  }
  if (!empty && !(reach < like.data.length)) {
    throw new RangeError(
      `qkv: ${name}: shape ${formatShape(shape)} with strides ${formatShape(strides)} reaches element ${reach} ` +
        `but the data holds ${like.data.length} elements`,
    );
  }
  if (!Number.isSafeInteger(reach)) throw new RangeError(`qkv: ${name}: shape ${formatShape(shape)} is too large`);
  return { data: like.data, shape, dtype, strides };
}

/** Makes a tensor, inferring dtype from the array (Float32Array → float32, Uint8Array → bool). */
export function tensor<D extends TensorData>(
  data: D,
  shape: readonly number[],
  options: { dtype?: DType | MaskDType; strides?: readonly number[] } = {},
): Tensor<D> {
  optionsObject(options, 'tensor: options', ['dtype', 'strides']);
  return checkTensor({ data, shape, dtype: options.dtype, strides: options.strides }, 'tensor') as Tensor<D>;
}

/** True when the tensor's elements are laid out contiguously in row-major order. */
export function isContiguous(t: Tensor): boolean {
  const expected = contiguousStrides(t.shape);
  return t.shape.every((d, i) => d <= 1 || (t.strides ?? expected)[i] === expected[i]);
}

/**
 * [B, S, H·D] → [B, H, S, D] as a strided view of the same data (no copy): the usual way
 * to feed a projection's output to attention in the default 'bhsd' layout.
 */
export function splitHeads<D extends TensorData>(x: TensorLike<D>, numHeads: number): Tensor<D> {
  const t = checkTensor(x, 'splitHeads(x)');
  if (t.shape.length !== 3) {
    throw new RangeError(`qkv: splitHeads(x): x must be [B, S, H*D], got shape ${formatShape(t.shape)}`);
  }
  if (!Number.isSafeInteger(numHeads) || numHeads < 1 || t.shape[2] % numHeads !== 0) {
    throw new RangeError(`qkv: splitHeads(x, numHeads): numHeads = ${numHeads} must divide the last dim of ${formatShape(t.shape)}`);
  }
  const [B, S, E] = t.shape;
  const [sb, ss, se] = t.strides!;
  const headDim = E / numHeads;
  return { data: t.data as D, dtype: t.dtype, shape: [B, numHeads, S, headDim], strides: [sb, headDim * se, ss, se] };
}

/**
 * [B, H, S, D] → [B, S, H·D]. A view when the heads already sit side by side in memory
 * (e.g. the output of attention written into a splitHeads view, or layout 'bshd'),
 * otherwise a contiguous copy.
 */
export function mergeHeads<D extends TensorData>(x: TensorLike<D>): Tensor<D> {
  const t = checkTensor(x, 'mergeHeads(x)');
  if (t.shape.length !== 4) {
    throw new RangeError(`qkv: mergeHeads(x): x must be [B, H, S, D], got shape ${formatShape(t.shape)}`);
  }
  const [B, H, S, D] = t.shape;
  const [sb, sh, ss, sd] = t.strides!;
  if ((sd === 1 || D === 1) && (sh === D || H === 1)) {
    // Heads are adjacent D-blocks within each (b, s): [B, S, H·D] is a view.
    return { data: t.data as D, dtype: t.dtype, shape: [B, S, H * D], strides: [sb, ss, 1] };
  }
  // A Float16Array is copied as bits and comes back as a Float16Array.
  const F16 = isFloat16Array(t.data) ? float16ArrayClass() : undefined;
  const out = (F16 ? new (F16 as unknown as new (n: number) => D)(B * S * H * D) : allocate(t.dtype, B * S * H * D)) as D;
  const src = isFloat16Array(t.data) ? float16Bits(t.data) : t.data;
  const dst = isFloat16Array(out) ? float16Bits(out) : out;
  let o = 0;
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let h = 0; h < H; h++) {
        const base = b * sb + h * sh + s * ss;
        for (let d = 0; d < D; d++) dst[o++] = src[base + d * sd];
      }
  return { data: out, dtype: t.dtype, shape: [B, S, H * D], strides: [S * H * D, H * D, 1] };
}

/**
 * The elements of `t` in row-major order, in the typed array its dtype uses (float16 as bits):
 * a view when already contiguous, else a copy.
 */
export function contiguousData(t: Tensor): TensorData {
  const src = isFloat16Array(t.data) ? float16Bits(t.data) : t.data;
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (isContiguous(t)) return src.subarray(0, size) as TensorData;
  const out = allocate(t.dtype, size);
  const strides = t.strides ?? contiguousStrides(t.shape);
  const index = new Array<number>(t.shape.length).fill(0);
  for (let o = 0; o < size; o++) {
    let at = 0;
    for (let i = 0; i < index.length; i++) at += index[i] * strides[i];
    out[o] = src[at];
    for (let i = index.length - 1; i >= 0; i--) {
      if (++index[i] < t.shape[i]) break;
      index[i] = 0;
    }
  }
  return out;
}
