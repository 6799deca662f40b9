// Loads the compiled addon once. A missing or broken addon is not an error until someone
// asks for backend 'cpu'; backends() reports why it is unavailable.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AttentionCall, Backend } from './types';

export interface NativeCapabilities {
  /** The ISA whose kernels run: 'avx512', 'avx2' or 'scalar' (QKV_ISA can force a lower one). */
  isa: string;
  /** Every ISA this CPU can run, best first. */
  isas: string[];
  /** Default threads per call (QKV_THREADS, else the number of cores). */
  threads: number;
  dtypes: string[];
  cuda: boolean;
}

interface NativeAddon {
  attention(...args: unknown[]): void;
  attentionAsync(...args: unknown[]): Promise<void>;
  capabilities(): NativeCapabilities;
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

function load(): { addon: NativeAddon | null; path: string | null; error: string | null } {
  const candidates = process.env.QKV_NATIVE_PATH
    ? [process.env.QKV_NATIVE_PATH]
    : ['Release', 'Debug'].map((config) => join(packageRoot(), 'build', config, 'qkv.node'));
  const path = candidates.find((p) => existsSync(p));
  if (!path) return { addon: null, path: null, error: `native addon not built (looked for ${candidates.join(', ')})` };
  try {
    const module = { exports: {} as NativeAddon };
    process.dlopen(module, path);
    return { addon: module.exports, path, error: null };
  } catch (e) {
    return { addon: null, path, error: `native addon failed to load from ${path}: ${(e as Error).message}` };
  }
}

let loaded: ReturnType<typeof load> | undefined;

export function nativeAddon(): ReturnType<typeof load> {
  loaded ??= load();
  return loaded;
}

function nativeArgs(call: AttentionCall): unknown[] {
  const options = {
    scale: call.scale,
    causal: call.causal,
    alignment: call.alignment,
    windowLeft: call.windowLeft,
    windowRight: call.windowRight,
    mask: call.mask,
    keyLengths: call.keyLengths,
    alibiSlopes: call.alibiSlopes,
    softcap: call.softcap,
    threads: call.threads,
  };
  return [call.q, call.k, call.v, call.out, call.lse, options];
}

export function nativeBackend(): Backend | null {
  const { addon } = nativeAddon();
  if (!addon) return null;
  return {
    name: 'cpu',
    run: (call) => addon.attention(...nativeArgs(call)),
    runAsync: (call) => addon.attentionAsync(...nativeArgs(call)),
  };
}
