// attention() and attentionAsync(): validate, normalise to logical [B, H, S, D] views,
// allocate outputs, pick a backend.
import {
  cudaAvailability,
  cudaBackend,
  hostBackend,
  nativeAddon,
  nativeBackend,
  type CudaAvailability,
  type NativeCapabilities,
} from './backends/native';
import { DeviceTensor } from './device-tensor';
import { referenceBackend } from './backends/reference';
import type { AttentionCall, Backend } from './backends/types';
import { normalizeMask, type MaskOptions } from './masks';
import { float32Option, optionsObject, show, threadsOption } from './options';
import {
  allocate,
  ATTENTION_DTYPES,
  checkTensor,
  float16ArrayClass,
  float16Bits,
  isFloat16Array,
  contiguousStrides,
  formatShape,
  type DType,
  type Tensor,
  type TensorData,
  type TensorLike,
  type View4,
} from './tensor';

/**
 * 'bhsd': tensors are [B, H, S, D] (PyTorch's layout). 'bshd': [B, S, H, D], which is what a
 * projection's [B, S, H·D] output already is. Any strides are accepted in both.
 */
export type Layout = 'bhsd' | 'bshd';
export type BackendChoice = 'auto' | 'cpu' | 'cuda' | 'js';

export interface AttentionOptions extends MaskOptions {
  /** Memory layout of q, k, v and out (default 'bhsd'). Masks are always [B, H, Sq, Skv]. */
  layout?: Layout;
  /** Multiplies Q·Kᵀ; default 1/√D. */
  scale?: number;
  /** Also return the log-sum-exp of each row's scores, float32 [B, Hq, Sq]. */
  returnLse?: boolean;
  /** Write the output here (shape [B, Hq, Sq, Dv] in `layout` order, any strides) instead of allocating. */
  out?: TensorLike;
  /**
   * 'auto' (default): 'cuda' when an input is a DeviceTensor, else native CPU when built,
   * else pure JS. 'cpu' / 'cuda': that backend or throw. 'js': pure JS.
   */
  backend?: BackendChoice;
  /** CUDA device for backend 'cuda' (default: the DeviceTensor inputs' device, else 0). */
  device?: number;
  /** CPU threads for this call (native backend); default QKV_THREADS or all cores. Output is bitwise the same for any count. */
  threads?: number;
}

export interface AttentionResult<D extends TensorData = TensorData> {
  output: Tensor<D>;
  /** float32 [B, Hq, Sq]; -Infinity for fully masked rows. */
  lse: Tensor<Float32Array>;
}

export type Input = TensorLike<Float32Array> | TensorLike<Uint16Array> | DeviceTensor;

const DTYPES_SUPPORTED: readonly DType[] = ATTENTION_DTYPES;

const EMPTY = { float32: new Float32Array(0), float16: new Uint16Array(0), bfloat16: new Uint16Array(0) };

/** Validates an input tensor and returns its logical [B, H, S, D] view. */
function input(t: unknown, name: string, layout: Layout): View4 {
  if (t instanceof DeviceTensor) {
    if (t.shape.length !== 4) {
      throw new RangeError(`qkv: ${name} must be 4-D (layout '${layout}'), got DeviceTensor shape ${formatShape(t.shape)}`);
    }
    const view = toLogical({ data: EMPTY[t.dtype], shape: t.shape, dtype: t.dtype, strides: t.strides }, layout);
    return { ...view, resident: t.handle(), device: t.device };
  }
  const checked = checkTensor(t, name);
  if (checked.shape.length !== 4) {
    const order = layout === 'bhsd' ? '[B, H, S, D]' : '[B, S, H, D]';
    throw new RangeError(`qkv: ${name} must be 4-D ${order} (layout '${layout}'), got shape ${formatShape(checked.shape)}`);
  }
  if (checked.dtype === 'bool') throw new TypeError(`qkv: ${name}: dtype must be float32, float16 or bfloat16, got bool`);
  if (!DTYPES_SUPPORTED.includes(checked.dtype as DType)) {
    throw new TypeError(`qkv: ${name}: dtype ${checked.dtype} is not supported yet (supported: ${DTYPES_SUPPORTED.join(', ')})`);
  }
  return toLogical(checked, layout);
}

function toLogical(t: Tensor, layout: Layout): View4 {
  const s = t.shape;
  const st = t.strides!;
  // Backends read float16 as bits: a Float16Array is viewed as Uint16Array (same memory).
  const data = isFloat16Array(t.data) ? float16Bits(t.data) : t.data;
  return layout === 'bhsd'
    ? { data, dtype: t.dtype, shape: [s[0], s[1], s[2], s[3]], strides: [st[0], st[1], st[2], st[3]] }
    : { data, dtype: t.dtype, shape: [s[0], s[2], s[1], s[3]], strides: [st[0], st[2], st[1], st[3]] };
}

function fromLogical(shape: readonly number[], layout: Layout): number[] {
  return layout === 'bhsd' ? [...shape] : [shape[0], shape[2], shape[1], shape[3]];
}

type ByteRange = [ArrayBufferLike, number, number] | null;

/** Byte range [begin, end) a strided view reaches inside its ArrayBuffer, or null when empty. */
function viewBytes(data: ArrayBufferView, shape: readonly number[], strides: readonly number[]): ByteRange {
  if (shape.some((d) => d === 0)) return null;
  const reach = shape.reduce((acc, d, i) => acc + (d - 1) * strides[i], 0);
  const begin = data.byteOffset;
  return [data.buffer, begin, begin + (reach + 1) * (data as Float32Array).BYTES_PER_ELEMENT];
}

const arrayBytes = (a: ArrayBufferView | null): ByteRange =>
  a && a.byteLength > 0 ? [a.buffer, a.byteOffset, a.byteOffset + a.byteLength] : null;

/** Outputs must not share memory with anything the call reads: kernels read inputs after writing outputs. */
function checkNoOverlap(out: View4, inputs: Record<string, ByteRange>): void {
  const o = viewBytes(out.data, out.shape, out.strides);
  if (!o) return;
  for (const [name, r] of Object.entries(inputs)) {
    if (r && r[0] === o[0] && r[1] < o[2] && o[1] < r[2]) {
      throw new RangeError(`qkv: options.out overlaps the memory of ${name}; attention cannot run in place`);
    }
  }
}

/** Distinct output elements must have distinct addresses, or parallel writes race. */
function checkWritesOnce(t: Tensor): void {
  const shape = t.shape;
  const strides = t.strides!;
  if (shape.some((d) => d === 0)) return;
  const order = shape.map((_, i) => i).sort((a, b) => strides[a] - strides[b]);
  let span = 0; // highest offset the dimensions seen so far reach
  for (const d of order) {
    if (shape[d] <= 1) continue;
    if (strides[d] <= span) {
      throw new RangeError(
        `qkv: options.out: strides ${formatShape(strides)} for shape ${formatShape(shape)} write some elements twice`,
      );
    }
    span += strides[d] * (shape[d] - 1);
  }
}

/** Every option attention() takes: one entry per option (TypeScript checks the list is complete). */
const ATTENTION_OPTIONS: Record<keyof AttentionOptions, true> = {
  layout: true, scale: true, returnLse: true, out: true, backend: true, device: true, threads: true,
  causal: true, mask: true, keyLengths: true, window: true, alibiSlopes: true, softcap: true,
};
export const ATTENTION_OPTION_KEYS = Object.keys(ATTENTION_OPTIONS) as (keyof AttentionOptions)[];

/** A validated call, ready to run: nothing is read or written until then. */
export interface PreparedCall {
  call: AttentionCall;
  output: Tensor;
  backend: Backend;
  returnLse: boolean;
}

/** Validates a call completely (the one validation authority for every backend) and allocates its outputs. */
export function prepare(q: Input, k: Input, v: Input, options: AttentionOptions): PreparedCall {
  optionsObject(options, 'options', ATTENTION_OPTION_KEYS);
  const layout = options.layout ?? 'bhsd';
  if (layout !== 'bhsd' && layout !== 'bshd') {
    throw new TypeError(`qkv: options.layout must be 'bhsd' or 'bshd', got ${show(layout)}`);
  }
  const qv = input(q, 'q', layout);
  const kv = input(k, 'k', layout);
  const vv = input(v, 'v', layout);
  const [B, Hq, Sq, D] = qv.shape;
  const [, Hkv, Skv] = kv.shape;
  const Dv = vv.shape[3];
  const shapes = () =>
    `q ${formatShape(fromLogical(qv.shape, layout))}, k ${formatShape(fromLogical(kv.shape, layout))}, ` +
    `v ${formatShape(fromLogical(vv.shape, layout))} (layout '${layout}')`;
  if (kv.dtype !== qv.dtype || vv.dtype !== qv.dtype) {
    throw new TypeError(`qkv: q, k and v must share one dtype, got ${qv.dtype}, ${kv.dtype}, ${vv.dtype}`);
  }
  if (Hq < 1 || Hkv < 1 || D < 1 || Dv < 1) throw new RangeError(`qkv: heads and head dims must be >= 1: ${shapes()}`);
  if (kv.shape[0] !== B || vv.shape[0] !== B) throw new RangeError(`qkv: batch sizes differ: ${shapes()}`);
  if (kv.shape[3] !== D) throw new RangeError(`qkv: q and k head dims differ (${D} vs ${kv.shape[3]}): ${shapes()}`);
  if (vv.shape[1] !== Hkv || vv.shape[2] !== Skv) {
    throw new RangeError(`qkv: k and v must have the same heads and sequence length: ${shapes()}`);
  }
  if (Hq % Hkv !== 0) {
    throw new RangeError(`qkv: query heads (${Hq}) must be a multiple of key/value heads (${Hkv}) for GQA/MQA: ${shapes()}`);
  }

  const scale = float32Option(options.scale ?? 1 / Math.sqrt(D), 'options.scale');
  const masks = normalizeMask(options, B, Hq, Sq, Skv);
  const threads = threadsOption(options.threads, 'options.threads');

  const { backend, device } = chooseBackend(options.backend, options.device, { q: qv, k: kv, v: vv });
  const outShape = fromLogical([B, Hq, Sq, Dv], layout);
  let output: Tensor;
  if (options.out !== undefined) {
    output = checkTensor(options.out, 'options.out');
    if (output.dtype !== qv.dtype) throw new TypeError(`qkv: options.out: dtype must be ${qv.dtype}, got ${output.dtype}`);
    if (output.shape.length !== 4 || output.shape.some((d, i) => d !== outShape[i])) {
      throw new RangeError(`qkv: options.out: shape must be ${formatShape(outShape)}, got ${formatShape(output.shape)}`);
    }
  } else {
    const size = outShape.reduce((a, b) => a * b, 1);
    // The output comes back in the kind of array q came in (Float16Array in, Float16Array out).
    const F16 = !(q instanceof DeviceTensor) && isFloat16Array(q.data) ? float16ArrayClass() : undefined;
    const data = F16 ? (new (F16 as unknown as new (n: number) => TensorData)(size)) : allocate(qv.dtype, size);
    output = { data, shape: outShape, dtype: qv.dtype, strides: contiguousStrides(outShape) };
  }
  checkWritesOnce(output);
  const out = toLogical(output, layout);
  const host = (view: View4): ByteRange => (view.resident === undefined ? viewBytes(view.data, view.shape, view.strides) : null);
  checkNoOverlap(out, {
    q: host(qv),
    k: host(kv),
    v: host(vv),
    'options.mask': masks.mask ? viewBytes(masks.mask.data, [B, Hq, Sq, Skv], masks.mask.strides) : null,
    'options.keyLengths': arrayBytes(masks.keyLengths),
    'options.alibiSlopes': arrayBytes(masks.alibiSlopes),
  });

  const lse: View4 | null = options.returnLse
    ? { data: new Float32Array(B * Hq * Sq), dtype: 'float32', shape: [B, Hq, Sq, 1], strides: [Hq * Sq, Sq, 1, 1] }
    : null;
  return { call: { q: qv, k: kv, v: vv, out, lse, scale, threads, device, ...masks }, output, backend, returnLse: !!options.returnLse };
}

let cudaLimits: { maxHeadDim: number; maxGrid: number } | undefined;

/**
 * Why backend 'cuda' cannot run a call of these sizes, or null: named checks against the
 * limits the addon states (backends().cuda.limits), so they are known before any copy.
 */
function cudaIneligible([B, Hq, , D]: readonly number[], Dv: number): string | null {
  const limits = (cudaLimits ??= cudaAvailability().limits); // constants of the build: asked once
  if (!limits) return null;
  const checks: Array<[boolean, string]> = [
    [
      D <= limits.maxHeadDim && Dv <= limits.maxHeadDim,
      `supports head dims up to ${limits.maxHeadDim} (q/k head dim ${D}, v head dim ${Dv}); use backend 'cpu' for larger ones`,
    ],
    [
      B <= limits.maxGrid && Hq <= limits.maxGrid,
      `supports batch and query heads up to ${limits.maxGrid} each (grid limits), got ${B} and ${Hq}`,
    ],
  ];
  return checks.find(([ok]) => !ok)?.[1] ?? null;
}

function chooseBackend(
  choice: BackendChoice | undefined,
  deviceOption: number | undefined,
  inputs: Record<string, View4>,
): { backend: Backend; device: number } {
  const resident = Object.entries(inputs).filter(([, view]) => view.resident !== undefined);
  const picked = choice ?? 'auto';
  if (picked === 'cuda' || (picked === 'auto' && resident.length > 0)) {
    const cuda = cudaBackend();
    if (!cuda) throw new Error(`qkv: backend 'cuda' is unavailable: ${cudaAvailability().reason}`);
    const device = deviceOption ?? resident[0]?.[1].device ?? 0;
    if (!Number.isSafeInteger(device) || device < 0) {
      throw new RangeError(`qkv: options.device must be a non-negative integer, got ${show(deviceOption)}`);
    }
    for (const [name, view] of resident) {
      if (view.device !== device) {
        throw new TypeError(`qkv: ${name} lives on CUDA device ${view.device}, but the call runs on device ${device}`);
      }
    }
    const refusal = cudaIneligible(inputs.q.shape, inputs.v.shape[3]);
    if (refusal) throw new RangeError(`qkv: backend 'cuda' ${refusal}`);
    return { backend: cuda, device };
  }
  if (deviceOption !== undefined && picked !== 'auto') {
    throw new TypeError(`qkv: options.device applies to backend 'cuda' only (backend is '${picked}')`);
  }
  if (resident.length > 0 && (picked === 'cpu' || picked === 'js')) {
    throw new TypeError(
      `qkv: ${resident[0][0]} is a DeviceTensor (CUDA memory), which backend '${picked}' cannot read: ` +
        `use backend 'cuda', or copy it with toHost()`,
    );
  }
  if (picked !== 'auto' && picked !== 'cpu' && picked !== 'js') {
    throw new TypeError(`qkv: options.backend must be 'auto', 'cpu', 'cuda' or 'js', got ${show(choice)}`);
  }
  return { backend: hostBackend(picked, '') === 'cpu' ? nativeBackend()! : referenceBackend, device: -1 };
}

/** Runs a prepared call on the calling thread. */
export function runPrepared({ call, output, backend, returnLse }: PreparedCall): Tensor | AttentionResult {
  backend.run(call);
  return result(call, output, returnLse);
}

/** Runs a prepared call off the JS thread (on the native backends). */
export async function runPreparedAsync({ call, output, backend, returnLse }: PreparedCall): Promise<Tensor | AttentionResult> {
  await backend.runAsync(call);
  return result(call, output, returnLse);
}

function result(call: AttentionCall, output: Tensor, returnLse: boolean): Tensor | AttentionResult {
  if (!returnLse) return output;
  const [B, Hq, Sq] = call.q.shape;
  return {
    output,
    lse: { data: call.lse!.data as Float32Array, shape: [B, Hq, Sq], dtype: 'float32', strides: [Hq * Sq, Sq, 1] },
  };
}

/**
 * softmax(scale · Q·Kᵀ + mask) · V per head, on the calling thread.
 * q [B, Hq, Sq, D], k [B, Hkv, Skv, D], v [B, Hkv, Skv, Dv] (or [B, S, H, ·] with layout 'bshd').
 * Returns the output [B, Hq, Sq, Dv] in the same layout, or {output, lse} with returnLse.
 */
export function attention<D extends Float32Array | Uint16Array>(
  q: TensorLike<D> | DeviceTensor,
  k: TensorLike<D> | DeviceTensor,
  v: TensorLike<D> | DeviceTensor,
  options: AttentionOptions & { returnLse: true },
): AttentionResult<D>;
export function attention<D extends Float32Array | Uint16Array>(
  q: TensorLike<D> | DeviceTensor,
  k: TensorLike<D> | DeviceTensor,
  v: TensorLike<D> | DeviceTensor,
  options?: AttentionOptions,
): Tensor<D>;
export function attention(q: Input, k: Input, v: Input, options: AttentionOptions = {}): Tensor | AttentionResult {
  return runPrepared(prepare(q, k, v, options));
}

/**
 * attention() off the JS thread (the native backend runs on a libuv worker; inputs stay
 * referenced until the promise settles). Do not write to the inputs or out meanwhile.
 */
export function attentionAsync<D extends Float32Array | Uint16Array>(
  q: TensorLike<D> | DeviceTensor,
  k: TensorLike<D> | DeviceTensor,
  v: TensorLike<D> | DeviceTensor,
  options: AttentionOptions & { returnLse: true },
): Promise<AttentionResult<D>>;
export function attentionAsync<D extends Float32Array | Uint16Array>(
  q: TensorLike<D> | DeviceTensor,
  k: TensorLike<D> | DeviceTensor,
  v: TensorLike<D> | DeviceTensor,
  options?: AttentionOptions,
): Promise<Tensor<D>>;
export async function attentionAsync(
  q: Input,
  k: Input,
  v: Input,
  options: AttentionOptions = {},
): Promise<Tensor | AttentionResult> {
  return runPreparedAsync(prepare(q, k, v, options));
}

export interface BackendsInfo {
  /** What backend 'auto' picks in this process (for host inputs; DeviceTensor inputs pick 'cuda'). */
  default: 'cpu' | 'js';
  cpu: { available: true; path: string; capabilities: NativeCapabilities } | { available: false; reason: string };
  /** available: a device was found. built: the addon has a CUDA backend. reason: why unavailable. */
  cuda: CudaAvailability;
  js: { available: true; dtypes: DType[] };
}

/** What this process can use. */
export function backends(): BackendsInfo {
  const native = nativeAddon();
  return {
    default: native.addon ? 'cpu' : 'js',
    cpu: native.addon
      ? { available: true, path: native.path!, capabilities: native.addon.capabilities() }
      : { available: false, reason: native.error! },
    cuda: cudaAvailability(),
    js: { available: true, dtypes: [...DTYPES_SUPPORTED] },
  };
}
