// DeviceTensor: a tensor held in CUDA device memory, so data many calls share (keys and
// values above all) crosses to the GPU once instead of on every call. Pass it as q, k or v
// with backend 'cuda' (or 'auto', which picks CUDA when an input lives there).
import { optionsObject, show } from './options';
import { cudaAvailability, nativeAddon } from './backends/native';
import {
  allocate,
  ATTENTION_DTYPES,
  bytesOf,
  checkTensor,
  contiguousData,
  contiguousStrides,
  describe,
  float16Bits,
  formatShape,
  isFloat16Array,
  type DType,
  type Tensor,
  type TensorLike,
} from './tensor';

export interface DeviceTensorOptions {
  /** CUDA device ordinal (default 0). */
  device?: number;
}


function deviceOrdinal(options: DeviceTensorOptions | undefined): number {
  optionsObject(options, 'DeviceTensor: options', ['device']);
  const device = options?.device ?? 0;
  if (typeof device !== 'number' || !Number.isSafeInteger(device) || device < 0) {
    throw new RangeError(`qkv: DeviceTensor: options.device must be a non-negative integer, got ${show(device)}`);
  }
  return device;
}

function cudaAddon() {
  const cuda = cudaAvailability();
  if (!cuda.available) throw new Error(`qkv: DeviceTensor needs backend 'cuda', which is unavailable: ${cuda.reason}`);
  return nativeAddon().addon!;
}

interface Allocation {
  handle: unknown; // null once freed
  byteLength: number;
}

export class DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Element strides: contiguous row-major, except for views made by narrow(). */
  readonly strides: readonly number[];
  readonly device: number;
  /** Bytes of the device allocation (shared by every view of it). */
  readonly byteLength: number;
  readonly #allocation: Allocation;

  private constructor(shape: readonly number[], dtype: DType, device: number, view?: { of: DeviceTensor; strides: readonly number[] }) {
    if (!ATTENTION_DTYPES.includes(dtype)) {
      throw new TypeError(`qkv: DeviceTensor: dtype must be one of ${ATTENTION_DTYPES.join(', ')}, got ${show(dtype)}`);
    }
    this.shape = [...shape];
    this.dtype = dtype;
    this.device = device;
    if (view) {
      this.strides = [...view.strides];
      this.#allocation = view.of.#allocation;
    } else {
      this.strides = contiguousStrides(shape);
      const byteLength = shape.reduce((a, b) => a * b, 1) * bytesOf(dtype);
      if (!Number.isSafeInteger(byteLength)) throw new RangeError(`qkv: DeviceTensor: shape ${formatShape(shape)} is too large`);
      this.#allocation = { handle: cudaAddon().cudaAllocate(device, byteLength), byteLength };
    }
    this.byteLength = this.#allocation.byteLength;
  }

  /** Uninitialised device memory of this shape and dtype. */
  static empty(shape: readonly number[], dtype: DType = 'float32', options?: DeviceTensorOptions): DeviceTensor {
    if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
      throw new RangeError(`qkv: DeviceTensor.empty: shape must be an array of non-negative integers, got ${show(shape)}`);
    }
    return new DeviceTensor(shape, dtype, deviceOrdinal(options));
  }

  /** A device copy of a host tensor (any strides; it lands contiguous). */
  static from(t: TensorLike, options?: DeviceTensorOptions): DeviceTensor {
    const host = checkTensor(t, 'DeviceTensor.from(t)');
    if (host.dtype === 'bool') throw new TypeError('qkv: DeviceTensor.from(t): dtype must be float32, float16 or bfloat16, got bool');
    const d = new DeviceTensor(host.shape, host.dtype, deviceOrdinal(options));
    d.write(contiguousData(host) as Float32Array | Uint16Array);
    return d;
  }

  /**
   * The first `length` entries along dimension `dim`: a view of the same memory (no copy).
   * E.g. the filled part of a device KV cache, [B, H, n, D] of a [B, H, capacity, D] tensor.
   */
  narrow(dim: number, length: number): DeviceTensor {
    if (!Number.isSafeInteger(dim) || dim < 0 || dim >= this.shape.length) {
      throw new RangeError(`qkv: DeviceTensor.narrow: dim must be in [0, ${this.shape.length}), got ${show(dim)}`);
    }
    if (!Number.isSafeInteger(length) || length < 0 || length > this.shape[dim]) {
      throw new RangeError(`qkv: DeviceTensor.narrow: length must be in [0, ${this.shape[dim]}] for dim ${dim}, got ${show(length)}`);
    }
    const shape = this.shape.map((d, i) => (i === dim ? length : d));
    this.handle(); // a freed tensor has no views
    return new DeviceTensor(shape, this.dtype, this.device, { of: this, strides: this.strides });
  }

  /**
   * Copies `data` (elements in this tensor's dtype: Float32Array, or Uint16Array bits /
   * Float16Array for 16-bit types) to elements [offset, offset + data.length) of the
   * allocation, in its contiguous order. E.g. a 'bshd' [1, capacity, H, D] cache takes token p's
   * keys at offset p·H·D.
   */
  write(data: Float32Array | Uint16Array, offset = 0): void {
    const source = isFloat16Array(data) && this.dtype === 'float16' ? float16Bits(data) : data;
    const expected = this.dtype === 'float32' ? Float32Array : Uint16Array;
    if (!(source instanceof expected)) {
      throw new TypeError(`qkv: DeviceTensor.write: a ${this.dtype} tensor takes a ${expected.name}, got ${describe(data)}`);
    }
    this.#checkRange(offset, source.length, 'write');
    nativeAddon().addon!.cudaWrite(this.handle(), offset * bytesOf(this.dtype), source);
  }

  /** A host copy (contiguous, same shape and dtype). */
  toHost(): Tensor<Float32Array | Uint16Array> {
    const all = allocate(this.dtype, this.byteLength / bytesOf(this.dtype)) as Float32Array | Uint16Array;
    nativeAddon().addon!.cudaRead(this.handle(), 0, all);
    const view: Tensor = { data: all, shape: this.shape, dtype: this.dtype, strides: this.strides };
    const data = contiguousData(view) as Float32Array | Uint16Array;
    return { data: data.length === all.length ? data : data.slice(), shape: [...this.shape], dtype: this.dtype };
  }

  /**
   * Releases the device memory, for this tensor and every view of it, once no call in
   * flight reads it. None of them can be used afterwards.
   */
  free(): void {
    if (this.#allocation.handle === null) return;
    nativeAddon().addon!.cudaFree(this.#allocation.handle);
    this.#allocation.handle = null;
  }

  get freed(): boolean {
    return this.#allocation.handle === null;
  }

  /** @internal The binding's handle. */
  handle(): unknown {
    if (this.#allocation.handle === null) throw new TypeError('qkv: this DeviceTensor was freed');
    return this.#allocation.handle;
  }

  #checkRange(offset: number, length: number, what: string): void {
    const size = this.byteLength / bytesOf(this.dtype);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > size) {
      throw new RangeError(
        `qkv: DeviceTensor.${what}: elements [${offset}, ${offset + length}) do not fit the tensor's ${size} ` +
          `(shape ${formatShape(this.shape)})`,
      );
    }
  }
}
