// Loads the compiled addon once. A missing or broken addon is not an error until someone
// asks for backend 'cpu'; backends() reports why it is unavailable.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { View4 } from '../tensor';
import type { AttentionCall, Backend } from './types';

export interface NativeCapabilities {
  /** The ISA whose kernels run: 'avx512bf16', 'avx512', 'avx2' or 'scalar' (QKV_ISA can force a lower one). */
  isa: string;
  /** Every ISA this CPU can run, best first. */
  isas: string[];
  /** Default threads per call (QKV_THREADS, else the number of cores). */
  threads: number;
  dtypes: string[];
  /** The addon was built with a CUDA backend (see backends().cuda for devices). */
  cuda: boolean;
}

export interface CudaDeviceInfo {
  ordinal: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
}

export interface NativeCudaInfo {
  built: boolean;
  /** The CPU shim stands in for a GPU (a QKV_CUDA=SHIM test build). */
  emulated: boolean;
  runtime: string;
  reason: string;
  devices: CudaDeviceInfo[];
  /** What the CUDA kernels accept: head dims up to maxHeadDim, batch and query heads up to maxGrid each. */
  limits: { maxHeadDim: number; maxGrid: number };
}

/** The binding's calling convention as the addon states it (native/napi/binding.cpp). */
interface BindingLayout {
  header: Record<string, number>;
  dtype: Record<string, number>;
  maskKind: Record<string, number>;
}

interface NativeAddon {
  layout: BindingLayout;
  attention(...args: unknown[]): void;
  attentionAsync(...args: unknown[]): Promise<void>;
  capabilities(): NativeCapabilities;
  cudaInfo(): NativeCudaInfo;
  cudaAllocate(device: number, bytes: number): unknown;
  cudaWrite(handle: unknown, byteOffset: number, source: ArrayBufferView): void;
  cudaRead(handle: unknown, byteOffset: number, target: ArrayBufferView): void;
  cudaFree(handle: unknown): void;
  linearPack(weight: Float32Array, outFeatures: number, inFeatures: number, bias: Float32Array | null): unknown;
  linearForward(handle: unknown, x: Float32Array, rows: number, y: Float32Array, threads: number): void;
}

/** The package root: the nearest directory upwards holding qkv's package.json. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'qkv') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`qkv: cannot find the package root above ${__dirname}`);
    dir = parent;
  }
}

interface Loaded {
  addon: NativeAddon | null;
  path: string | null;
  error: string | null;
  /** The path came from QKV_NATIVE_PATH: failing to load it is an error, never a fallback. */
  explicit: boolean;
}

function load(): Loaded {
  const explicit = !!process.env.QKV_NATIVE_PATH;
  const candidates = explicit
    ? [process.env.QKV_NATIVE_PATH!]
    : ['Release', 'Debug'].map((config) => join(packageRoot(), 'build', config, 'qkv.node'));
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    const error = explicit
      ? `QKV_NATIVE_PATH=${candidates[0]} does not exist`
      : `native addon not built (looked for ${candidates.join(', ')})`;
    return { addon: null, path: null, error, explicit };
  }
  try {
    const module = { exports: {} as NativeAddon };
    process.dlopen(module, path);
    const mismatch = layoutMismatch(module.exports.layout);
    if (mismatch) {
      const error = `native addon at ${path} speaks another calling convention (${mismatch}): it was built from another version of qkv; rebuild it`;
      return { addon: null, path, error, explicit };
    }
    return { addon: module.exports, path, error: null, explicit };
  } catch (e) {
    return { addon: null, path, error: `native addon failed to load from ${path}: ${(e as Error).message}`, explicit };
  }
}

let loaded: Loaded | undefined;
let warned = false;

/**
 * The addon for a caller that asked for no backend in particular ('auto'), or null when the
 * pure-JS backend must stand in. Standing in is announced once per process with the reason
 * (it is ~300× slower); an explicit QKV_NATIVE_PATH that does not load is an error instead.
 */
export function autoAddon(): NativeAddon | null {
  const { addon, error, explicit } = nativeAddon();
  if (addon) return addon;
  if (explicit) throw new Error(`qkv: the native addon named by QKV_NATIVE_PATH cannot be used: ${error}`);
  if (!warned) {
    warned = true;
    process.emitWarning(`the native addon is unavailable (${error}); using the pure-JS backend, which is far slower`, {
      type: 'QkvWarning',
      code: 'QKV_JS_FALLBACK',
    });
  }
  return null;
}

export function nativeAddon(): Loaded {
  loaded ??= load();
  return loaded;
}

/**
 * The host backend a choice resolves to, by one rule for attention and Linear alike: 'js' is
 * pure JS; 'cpu' is the addon or an Error saying why it is unavailable; 'auto' is the addon
 * when it loads, else pure JS (announced once, see autoAddon). `where` prefixes messages.
 */
export function hostBackend(choice: 'auto' | 'cpu' | 'js', where: string): 'cpu' | 'js' {
  if (choice === 'js') return 'js';
  if (choice === 'auto') return autoAddon() ? 'cpu' : 'js';
  const { addon, error } = nativeAddon();
  if (!addon) throw new Error(`qkv: ${where}backend 'cpu' is unavailable: ${error}`);
  return 'cpu';
}

/**
 * The fields of the binding's Float64Array header this file writes. Their indices, and the
 * dtype and mask codes, come from the addon itself (native/napi/header.h, exported as
 * `layout`): one table, in C++. An addon missing any of them is refused at load.
 */
const HEADER_FIELDS = [
  'qShape', 'kShape', 'vShape', 'outShape', 'lseShape', 'maskStrides', 'scale', 'softcap', 'diagonalOffset',
  'windowLeft', 'windowRight', 'threads', 'maskKind', 'dtype', 'cudaDevice', 'length',
] as const;
export type HeaderField = (typeof HEADER_FIELDS)[number];
const CODES = { dtype: ['float32', 'float16', 'bfloat16'], maskKind: ['boolean', 'additive'] } as const;

/** What this file needs that the addon's stated layout lacks, or null when it has it all. */
export function layoutMismatch(layout: BindingLayout | undefined): string | null {
  if (!layout || typeof layout !== 'object') return 'it states no layout';
  const integer = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  for (const field of HEADER_FIELDS) {
    if (!integer(layout.header?.[field])) return `header.${field} is missing`;
  }
  for (const [table, names] of Object.entries(CODES)) {
    for (const name of names) {
      if (!integer((layout as unknown as Record<string, Record<string, number>>)[table]?.[name])) return `${table}.${name} is missing`;
    }
  }
  return null;
}

/** The loaded addon's header indices (the addon must be loaded). */
export function headerLayout(): Readonly<Record<HeaderField, number>> {
  return nativeAddon().addon!.layout.header as Record<HeaderField, number>;
}

function writeView(header: Float64Array, at: number, view: View4): void {
  header.set(view.shape, at);
  header.set(view.strides, at + 4);
}

/** The binding's arguments for a call. The header is copied by the binding before it returns. */
export function encodeCall(call: AttentionCall, header?: Float64Array): unknown[] {
  const { layout } = nativeAddon().addon!;
  const H = layout.header as Record<HeaderField, number>;
  header ??= new Float64Array(H.length);
  writeView(header, H.qShape, call.q);
  writeView(header, H.kShape, call.k);
  writeView(header, H.vShape, call.v);
  writeView(header, H.outShape, call.out);
  if (call.lse) writeView(header, H.lseShape, call.lse);
  if (call.mask) header.set(call.mask.strides, H.maskStrides);
  header[H.scale] = call.scale;
  header[H.softcap] = call.softcap;
  header[H.diagonalOffset] = call.diagonalOffset;
  header[H.windowLeft] = call.windowLeft;
  header[H.windowRight] = call.windowRight;
  header[H.threads] = call.threads;
  header[H.maskKind] = call.mask ? layout.maskKind[call.mask.kind] : 0;
  header[H.dtype] = layout.dtype[call.q.dtype];
  header[H.cudaDevice] = call.device + 1; // 0: the CPU backend
  return [
    header,
    call.q.resident ?? call.q.data,
    call.k.resident ?? call.k.data,
    call.v.resident ?? call.v.data,
    call.out.data,
    call.lse ? call.lse.data : null,
    call.mask ? call.mask.data : null,
    call.keyLengths,
    call.alibiSlopes,
  ];
}

function backendOf(name: 'cpu' | 'cuda', addon: NativeAddon): Backend {
  // Safe to share: the binding reads every call (async ones too) before it returns.
  const sharedHeader = new Float64Array(addon.layout.header.length);
  return {
    name,
    run: (call) => addon.attention(...encodeCall(call, sharedHeader)),
    runAsync: (call) => addon.attentionAsync(...encodeCall(call, sharedHeader)),
  };
}

let cpu: Backend | null | undefined;

export function nativeBackend(): Backend | null {
  if (cpu === undefined) {
    const { addon } = nativeAddon();
    cpu = addon ? backendOf('cpu', addon) : null;
  }
  return cpu;
}

export type CudaAvailability =
  | ({ available: true } & NativeCudaInfo)
  | ({ available: false } & Partial<NativeCudaInfo> & { reason: string });

/**
 * Whether backend 'cuda' can run here, and why not. Asked anew each time: a device that hit
 * an unrecoverable error (illegal address, ECC, lost) stops being listed, with the reason.
 */
export function cudaAvailability(): CudaAvailability {
  const { addon, error } = nativeAddon();
  if (!addon) return { available: false, built: false, reason: error! };
  const info = addon.cudaInfo();
  return info.devices.length > 0 ? { ...info, available: true } : { ...info, available: false };
}

let cudaCalls: Backend | null | undefined;

export function cudaBackend(): Backend | null {
  cudaCalls ??= cudaAvailability().available ? backendOf('cuda', nativeAddon().addon!) : null;
  return cudaCalls;
}
