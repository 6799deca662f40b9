// Linear layers, y = x·Wᵀ + b, for the projections around attention. The native backend packs
// W once (into the attention kernel's panel layout) and runs the same register-blocked
// micro-kernel as Q·Kᵀ; the JS backend is a plain loop with float64 accumulation.
import { hostBackend, nativeAddon } from './backends/native';
import { optionsObject, show, threadsOption } from './options';
import { describe } from './tensor';

export interface LinearOptions {
  /** [outFeatures] added to every output row. */
  bias?: Float32Array;
  /** 'auto' (default): native when built, else JS. 'cpu': native or throw. 'js': pure JS. */
  backend?: 'auto' | 'cpu' | 'js';
}

function floats(x: unknown, name: string, length: number, what: string): Float32Array {
  if (!(x instanceof Float32Array)) throw new TypeError(`qkv: Linear: ${name} must be a Float32Array, got ${describe(x)}`);
  if (x.length < length) throw new RangeError(`qkv: Linear: ${name} holds ${x.length} floats, ${what} needs ${length}`);
  return x;
}

function dim(x: unknown, name: string, min = 1): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x >= 2 ** 31) {
    throw new RangeError(`qkv: Linear: ${name} must be an integer in [${min}, 2^31), got ${show(x)}`);
  }
  return x;
}

export class Linear {
  readonly outFeatures: number;
  readonly inFeatures: number;
  readonly backend: 'cpu' | 'js';
  readonly #handle: unknown;
  readonly #weight: Float32Array | null; // JS backend only
  readonly #bias: Float32Array | null;

  /** weight: [outFeatures, inFeatures] row-major (PyTorch's nn.Linear layout). It is copied. */
  constructor(weight: Float32Array, outFeatures: number, inFeatures: number, options: LinearOptions = {}) {
    this.outFeatures = dim(outFeatures, 'outFeatures');
    this.inFeatures = dim(inFeatures, 'inFeatures');
    floats(weight, 'weight', outFeatures * inFeatures, `[${outFeatures}, ${inFeatures}]`);
    optionsObject(options, 'Linear: options', ['bias', 'backend']);
    const bias = options.bias === undefined ? null : floats(options.bias, 'options.bias', outFeatures, `[${outFeatures}]`);
    const choice = options.backend ?? 'auto';
    if (choice !== 'auto' && choice !== 'cpu' && choice !== 'js') {
      throw new TypeError(`qkv: Linear: options.backend must be 'auto', 'cpu' or 'js', got ${show(choice)}`);
    }
    this.backend = hostBackend(choice, 'Linear: ');
    if (this.backend === 'cpu') {
      this.#handle = nativeAddon().addon!.linearPack(weight, outFeatures, inFeatures, bias);
      this.#weight = null;
      this.#bias = null;
    } else {
      this.#handle = null;
      this.#weight = weight.slice(0, outFeatures * inFeatures);
      this.#bias = bias ? bias.slice(0, outFeatures) : null;
    }
  }

  /** x: [rows, inFeatures] contiguous → [rows, outFeatures] (into `out` when given; it must not overlap x). */
  forward(x: Float32Array, rows: number, out?: Float32Array, threads?: number): Float32Array {
    dim(rows, 'rows', 0);
    const threadCount = threadsOption(threads, 'Linear.forward: threads');
    floats(x, 'x', rows * this.inFeatures, `[${rows}, ${this.inFeatures}]`);
    const y = out ?? new Float32Array(rows * this.outFeatures);
    floats(y, 'out', rows * this.outFeatures, `[${rows}, ${this.outFeatures}]`);
    if (this.#handle !== null) {
      nativeAddon().addon!.linearForward(this.#handle, x, rows, y, threadCount);
      return y;
    }
    const [n, k, w, b] = [this.outFeatures, this.inFeatures, this.#weight!, this.#bias];
    if (y.buffer === x.buffer && y.byteOffset < x.byteOffset + rows * k * 4 && x.byteOffset < y.byteOffset + rows * n * 4) {
      throw new RangeError('qkv: Linear: out overlaps x');
    }
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < n; c++) {
        let acc = b ? b[c] : 0;
        for (let d = 0; d < k; d++) acc += x[r * k + d] * w[c * k + d];
        y[r * n + c] = acc;
      }
    }
    return y;
  }
}
