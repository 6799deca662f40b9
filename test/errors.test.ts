// Bad input gets a TypeError or RangeError naming the argument, from the TypeScript layer
// and from the native binding called directly.
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends, mergeHeads, splitHeads, tensor, type AttentionOptions } from '../lib';
import { headerLayout, nativeAddon } from '../lib/backends/native';

const f32 = (shape: number[]) => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape });
const q = f32([1, 2, 3, 4]);
const k = f32([1, 2, 5, 4]);
const v = f32([1, 2, 5, 4]);

type Call = [string, unknown, unknown, unknown, AttentionOptions | undefined, ErrorConstructor, RegExp];

const bad: Call[] = [
  ['q not an object', 3, k, v, {}, TypeError, /q must be a tensor/],
  ['q data a plain array', { data: [1, 2], shape: [1, 1, 1, 2] }, k, v, {}, TypeError, /q\.data must be a Float32Array/],
  ['k data Float64Array', q, { data: new Float64Array(40), shape: [1, 2, 5, 4] }, v, {}, TypeError, /k\.data/],
  ['Uint16Array without dtype', { data: new Uint16Array(24), shape: [1, 2, 3, 4] }, k, v, {}, TypeError, /say which with dtype/],
  ['mixed dtypes', { data: new Uint16Array(24), shape: [1, 2, 3, 4], dtype: 'float16' }, k, v, {}, TypeError, /q, k and v must share one dtype, got float16, float32, float32/],
  ['dtype/array mismatch', { data: new Float32Array(24), shape: [1, 2, 3, 4], dtype: 'bfloat16' }, k, v, {}, TypeError, /needs its data in a Uint16Array/],
  ['rank 3', f32([2, 3, 4]), k, v, {}, RangeError, /q must be 4-D \[B, H, S, D\].*\[2, 3, 4\]/],
  ['negative dim', { data: new Float32Array(24), shape: [1, -2, 3, 4] }, k, v, {}, RangeError, /q\.shape\[1\] must be a non-negative integer/],
  ['fractional dim', { data: new Float32Array(24), shape: [1, 2, 3.5, 4] }, k, v, {}, RangeError, /q\.shape\[2\]/],
  ['NaN dim', { data: new Float32Array(24), shape: [1, 2, NaN, 4] }, k, v, {}, RangeError, /q\.shape\[2\]/],
  ['data too short', { data: new Float32Array(23), shape: [1, 2, 3, 4] }, k, v, {}, RangeError, /q: shape \[1, 2, 3, 4\].*reaches element 23 but the data holds 23/],
  ['strides out of bounds', { data: new Float32Array(24), shape: [1, 2, 3, 4], strides: [24, 12, 4, 2] }, k, v, {}, RangeError, /q: shape .* strides \[24, 12, 4, 2\]/],
  ['shape product overflows 64 bits', { data: new Float32Array(16), shape: [65536, 65536, 65536, 65536] }, k, v, {}, RangeError, /q: shape \[65536, 65536, 65536, 65536\]/],
  ['sizes past 2^32 elements', { data: new Float32Array(16), shape: [1, 1, 2 ** 20, 2 ** 13] }, k, v, {}, RangeError, /q: shape \[1, 1, 1048576, 8192\].*reaches element/],
  ['strides rank', { data: new Float32Array(24), shape: [1, 2, 3, 4], strides: [1, 1] }, k, v, {}, RangeError, /differ in rank/],
  ['head dim mismatch', q, f32([1, 2, 5, 8]), f32([1, 2, 5, 8]), {}, RangeError, /q and k head dims differ \(4 vs 8\)/],
  ['batch mismatch', q, f32([2, 2, 5, 4]), f32([2, 2, 5, 4]), {}, RangeError, /batch sizes differ/],
  ['k/v length mismatch', q, k, f32([1, 2, 6, 4]), {}, RangeError, /same heads and sequence length/],
  ['GQA not a multiple', f32([1, 3, 3, 4]), k, v, {}, RangeError, /query heads \(3\) must be a multiple of key\/value heads \(2\)/],
  ['zero heads', f32([1, 0, 3, 4]), f32([1, 0, 5, 4]), f32([1, 0, 5, 4]), {}, RangeError, /heads and head dims must be >= 1/],
  ['layout', q, k, v, { layout: 'hbsd' as never }, TypeError, /options\.layout/],
  ['scale NaN', q, k, v, { scale: NaN }, RangeError, /options\.scale must be a finite float32 number .*got NaN/],
  ['scale beyond float32', q, k, v, { scale: 1e39 }, RangeError, /options\.scale must be a finite float32 number .*got 1e\+39/],
  ['scale string', q, k, v, { scale: '1' as never }, RangeError, /options\.scale/],
  ['causal', q, k, v, { causal: 'yes' as never }, TypeError, /options\.causal/],
  ['mask shape', q, k, v, { mask: { data: new Uint8Array(4), shape: [4] } }, RangeError, /options\.mask: shape \[4\] does not broadcast to \[B, Hq, Sq, Skv\] = \[1, 2, 3, 5\]/],
  ['mask rank 5', q, k, v, { mask: { data: new Uint8Array(15), shape: [1, 1, 1, 3, 5] } }, RangeError, /more than 4 dimensions/],
  ['mask dtype', q, k, v, { mask: { data: new Uint16Array(15), shape: [3, 5], dtype: 'float16' } as never }, TypeError, /options\.mask must be dtype 'bool'/],
  ['mask short', q, k, v, { mask: { data: new Uint8Array(14), shape: [3, 5] } }, RangeError, /options\.mask: shape \[3, 5\]/],
  ['keyLengths count', q, k, v, { keyLengths: [1, 2] }, RangeError, /options\.keyLengths must have 1 entries, got 2/],
  ['keyLengths range', q, k, v, { keyLengths: [6] }, RangeError, /options\.keyLengths\[0\] = 6 must be an integer in \[0, 5\]/],
  ['keyLengths negative', q, k, v, { keyLengths: Int32Array.from([-1]) }, RangeError, /keyLengths\[0\]/],
  ['keyLengths type', q, k, v, { keyLengths: 'x' as never }, TypeError, /options\.keyLengths must be a Int32Array/],
  ['window negative', q, k, v, { window: { left: -1 } }, RangeError, /options\.window\.left/],
  ['window type', q, k, v, { window: 3 as never }, TypeError, /options\.window must be/],
  ['alibi count', q, k, v, { alibiSlopes: [1] }, RangeError, /options\.alibiSlopes must have 2 entries/],
  ['alibi NaN', q, k, v, { alibiSlopes: [1, NaN] }, RangeError, /alibiSlopes\[1\] must be finite/],
  ['softcap 0', q, k, v, { softcap: 0 }, RangeError, /options\.softcap must be a float32 number in \[1\.4/],
  ['softcap rounds to 0 in float32', q, k, v, { softcap: 1e-50 }, RangeError, /options\.softcap .*got 1e-50/],
  ['softcap beyond float32', q, k, v, { softcap: 1e39 }, RangeError, /options\.softcap/],
  ['misspelt option', q, k, v, { casual: true } as never, TypeError, /options: unknown option 'casual' \(did you mean 'causal'\?\)/],
  ['misspelt window bound', q, k, v, { window: { lft: 2 } } as never, TypeError, /options\.window: unknown option 'lft' \(did you mean 'left'\?\)/],
  ['unknown option, nothing near', q, k, v, { zzzzzzzz: 1 } as never, TypeError, /unknown option 'zzzzzzzz'; valid options: 'layout'/],
  ['layout string quoted', q, k, v, { layout: 'bsdh' as never }, TypeError, /got 'bsdh'/],
  ['out writes an element twice', q, k, v, { out: { data: new Float32Array(24), shape: [1, 2, 3, 4], strides: [12, 6, 2, 1] } }, RangeError, /options\.out: strides \[12, 6, 2, 1\] for shape \[1, 2, 3, 4\] write some elements twice/],
  ['out overlaps the mask', q, k, v, (() => { const m = new Float32Array(64); return { mask: { data: m.subarray(0, 15), shape: [3, 5] }, out: { data: m.subarray(10, 34), shape: [1, 2, 3, 4] } }; })(), RangeError, /options\.out overlaps the memory of options\.mask/],
  ['out overlaps keyLengths', q, k, v, (() => { const b = new ArrayBuffer(256); return { keyLengths: new Int32Array(b, 0, 1).fill(5), out: { data: new Float32Array(b, 0, 24), shape: [1, 2, 3, 4] } }; })(), RangeError, /options\.out overlaps the memory of options\.keyLengths/],
  ['out overlaps alibiSlopes', q, k, v, (() => { const b = new Float32Array(64); return { alibiSlopes: b.subarray(30, 32), out: { data: b.subarray(8, 32), shape: [1, 2, 3, 4] } }; })(), RangeError, /options\.out overlaps the memory of options\.alibiSlopes/],
  ['threads 0', q, k, v, { threads: 0 }, RangeError, /options\.threads must be an integer in \[1, 1024\]/],
  ['threads -1', q, k, v, { threads: -1 }, RangeError, /options\.threads must be an integer in \[1, 1024\]/],
  ['out shape', q, k, v, { out: f32([1, 2, 3, 5]) }, RangeError, /options\.out: shape must be \[1, 2, 3, 4\], got \[1, 2, 3, 5\]/],
  ['out dtype', q, k, v, { out: { data: new Uint8Array(24), shape: [1, 2, 3, 4] } }, TypeError, /options\.out: dtype must be float32/],
  ['out aliases q', q, k, v, { out: q }, RangeError, /options\.out overlaps the memory of q/],
  ['backend', q, k, v, { backend: 'gpu' as never }, TypeError, /options\.backend/],
  ['threads', q, k, v, { threads: 1.5 }, RangeError, /options\.threads must be an integer/],
  ['options null', q, k, v, null as never, TypeError, /options must be an object/],
];

// Every backend rejects exactly the same calls with the same messages (one validation authority).
const BACKENDS = ['js', 'cpu', ...(backends().cuda.available ? (['cuda'] as const) : [])] as const;
describe.each(BACKENDS)('attention() rejects bad input, backend %s', (backend) => {
  it.runIf(backend !== 'cpu' || backends().cpu.available).each(bad)('%s', (_, q_, k_, v_, options, type, message) => {
    const opts = options === null ? (null as never) : { backend, ...options };
    expect(() => attention(q_ as never, k_ as never, v_ as never, opts)).toThrow(type);
    expect(() => attention(q_ as never, k_ as never, v_ as never, opts)).toThrow(message);
  });
});

describe('attentionAsync() rejects instead of throwing', () => {
  it('returns a rejected promise', async () => {
    const pending = attentionAsync(q, k, f32([1, 2, 6, 4]));
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).rejects.toThrow(RangeError);
  });
});

describe('tensor helpers', () => {
  it('tensor() infers dtypes and checks bounds', () => {
    expect(tensor(new Float32Array(6), [2, 3]).dtype).toBe('float32');
    expect(tensor(new Uint8Array(6), [2, 3]).dtype).toBe('bool');
    expect(tensor(new Uint16Array(6), [2, 3], { dtype: 'bfloat16' }).dtype).toBe('bfloat16');
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(RangeError);
  });

  it('splitHeads is a view and mergeHeads undoes it without copying', () => {
    const x = tensor(Float32Array.from({ length: 2 * 3 * 8 }, (_, i) => i), [2, 3, 8]);
    const split = splitHeads(x, 4);
    expect(split.shape).toEqual([2, 4, 3, 2]);
    expect(split.data).toBe(x.data);
    // element (b=1, h=2, s=1, d=1) is x[1, 1, 2*2+1]
    const [sb, sh, ss, sd] = split.strides!;
    expect(split.data[1 * sb + 2 * sh + 1 * ss + 1 * sd]).toBe(x.data[1 * 24 + 1 * 8 + 5]);
    const merged = mergeHeads(split);
    expect(merged.data).toBe(x.data);
    expect(merged.shape).toEqual([2, 3, 8]);
    expect(() => splitHeads(x, 3)).toThrow(/numHeads = 3 must divide/);
  });

  it('mergeHeads copies a contiguous [B, H, S, D] tensor into [B, S, H*D]', () => {
    const x = tensor(Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i), [1, 2, 3, 2]);
    const merged = mergeHeads(x);
    expect(merged.data).not.toBe(x.data);
    expect(Array.from(merged.data)).toEqual([0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
  });
});

// The binding is public: called directly with anything, it must throw, never crash.
describe.runIf(backends().cpu.available)('native binding re-checks its arguments', () => {
  const addon = () => nativeAddon().addon!;
  const H = backends().cpu.available ? headerLayout() : ({} as ReturnType<typeof headerLayout>);
  const contiguous = (shape: number[]) => [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1];
  /** A valid call: q [1,2,3,4], k/v [1,2,5,4], out [1,2,3,4], no lse/mask/lengths/slopes. */
  const good = (): unknown[] => {
    const header = new Float64Array(H.length);
    const put = (at: number, shape: number[]) => header.set([...shape, ...contiguous(shape)], at);
    put(H.qShape, [1, 2, 3, 4]);
    put(H.kShape, [1, 2, 5, 4]);
    put(H.vShape, [1, 2, 5, 4]);
    put(H.outShape, [1, 2, 3, 4]);
    header[H.scale] = 0.5;
    header[H.windowLeft] = -1;
    header[H.windowRight] = -1;
    return [header, new Float32Array(24), new Float32Array(40), new Float32Array(40), new Float32Array(24), null, null, null, null];
  };
  const hdr = (a: unknown[]) => a[0] as Float64Array;
  const cases: Array<[string, (args: unknown[]) => void, ErrorConstructor, RegExp]> = [
    ['too few arguments', (a) => a.splice(5), TypeError, /expected \(header, q, k, v, out, lse, mask, keyLengths, alibiSlopes\), got 5/],
    ['header a plain array', (a) => (a[0] = Array.from(hdr(a))), TypeError, /header must be a Float64Array/],
    ['header too short', (a) => (a[0] = hdr(a).subarray(0, 10)), TypeError, /header must be a Float64Array of at least \d+ values/],
    ['q a number', (a) => (a[1] = 1), TypeError, /q must be a Float32Array/],
    ['unknown dtype', (a) => (hdr(a)[H.dtype] = 7), RangeError, /header\.dtype must be an integer in \[0, 2\]/],
    ['float16 needs Uint16Array', (a) => (hdr(a)[H.dtype] = 1), TypeError, /q must be a Uint16Array/],
    ['wrong array', (a) => (a[2] = new Float64Array(40)), TypeError, /k must be a Float32Array/],
    ['fractional dim', (a) => (hdr(a)[H.vShape + 2] = 5.5), RangeError, /v\.shape\[2\] must be an integer/],
    ['NaN dim', (a) => (hdr(a)[H.qShape + 3] = NaN), RangeError, /q\.shape\[3\] must be an integer/],
    ['negative stride', (a) => (hdr(a)[H.qShape + 6] = -4), RangeError, /q\.strides\[2\]/],
    ['huge dim', (a) => (hdr(a)[H.qShape + 3] = 2 ** 40), RangeError, /every dimension must be in \[0, 2\^31\)/],
    ['reads past the end', (a) => (a[2] = new Float32Array(39)), RangeError, /k: shape .* reaches element 39/],
    ['overflowing strides', (a) => hdr(a).fill(2 ** 52, H.kShape + 4, H.kShape + 8), RangeError, /k: shape/],
    ['out writes twice', (a) => (hdr(a)[H.outShape + 6] = 2), RangeError, /out: strides .* write some elements twice/],
    ['out aliases k', (a) => (a[4] = (a[2] as Float32Array).subarray(0, 24)), RangeError, /out overlaps the memory of k/],
    ['D mismatch', (a) => (hdr(a)[H.kShape + 3] = 3), RangeError, /q and k head dims differ/],
    ['GQA', (a) => ((hdr(a)[H.kShape + 1] = 3), (hdr(a)[H.vShape + 1] = 3)), RangeError, /multiple of key\/value heads/],
    ['out shape', (a) => (hdr(a)[H.outShape + 3] = 5), RangeError, /out: shape \[1, 2, 3, 5\] must be \[1, 2, 3, 4\]/],
    ['lse shape', (a) => ((a[5] = new Float32Array(6)), hdr(a).set([1, 2, 3, 2, 6, 3, 1, 1], H.lseShape)), RangeError, /lse: shape/],
    ['scale Infinity', (a) => (hdr(a)[H.scale] = Infinity), RangeError, /scale must be finite/],
    ['softcap negative', (a) => (hdr(a)[H.softcap] = -1), RangeError, /softcap must be/],
    ['softcap rounds to 0', (a) => (hdr(a)[H.softcap] = 1e-50), RangeError, /options\.softcap must be a float32 number/],
    ['scale overflows float32', (a) => (hdr(a)[H.scale] = 1e39), RangeError, /scale must be finite/],
    ['out overlaps keyLengths', (a) => { const b = new ArrayBuffer(200); a[4] = new Float32Array(b, 0, 24); a[7] = new Int32Array(b, 16, 1).fill(5); }, RangeError, /out overlaps the memory of keyLengths/],
    ['lse overlaps alibiSlopes', (a) => { const b = new Float32Array(64); a[5] = b.subarray(0, 6); hdr(a).set([1, 2, 3, 1, 3, 3, 1, 1], H.lseShape); a[8] = b.subarray(4, 6); }, RangeError, /lse overlaps the memory of alibiSlopes/],
    ['diagonal offset fractional', (a) => (hdr(a)[H.diagonalOffset] = 0.5), RangeError, /diagonal offset must be an integer/],
    ['diagonal offset NaN', (a) => (hdr(a)[H.diagonalOffset] = NaN), RangeError, /diagonal offset must be an integer/],
    ['diagonal offset past 2^53', (a) => (hdr(a)[H.diagonalOffset] = -(2 ** 60)), RangeError, /diagonal offset/],
    ['window -2', (a) => (hdr(a)[H.windowLeft] = -2), RangeError, /options\.window\.left/],
    ['threads huge', (a) => (hdr(a)[H.threads] = 5000), RangeError, /options\.threads/],
    ['mask kind without data', (a) => (hdr(a)[H.maskKind] = 1), TypeError, /mask kind and mask data disagree/],
    ['mask type', (a) => ((hdr(a)[H.maskKind] = 1), (a[6] = new Float32Array(15))), TypeError, /options\.mask\.data must be a Uint8Array/],
    ['mask bounds', (a) => ((hdr(a)[H.maskKind] = 2), (a[6] = new Float32Array(14)), hdr(a).set([0, 0, 5, 1], H.maskStrides)), RangeError, /mask: shape \[1, 2, 3, 5\]/],
    ['keyLengths count', (a) => (a[7] = new Int32Array(2)), RangeError, /keyLengths: must hold one length per batch/],
    ['keyLengths value', (a) => (a[7] = Int32Array.from([9])), RangeError, /keyLengths\[0\] = 9 is outside \[0, 5\]/],
    ['alibi type', (a) => (a[8] = [1, 2]), TypeError, /options\.alibiSlopes must be a Float32Array/],
    ['alibi NaN', (a) => (a[8] = Float32Array.from([1, NaN])), RangeError, /alibiSlopes\[1\] is not finite/],
    ['cuda device -1', (a) => (hdr(a)[H.cudaDevice] = -1), RangeError, /header\.cudaDevice must be an integer in \[0, 1024\]/],
    ['cuda device fraction', (a) => (hdr(a)[H.cudaDevice] = 1.5), RangeError, /header\.cudaDevice/],
  ];
  it.each(cases)('%s', (_, mutate, type, message) => {
    const args = good();
    mutate(args);
    expect(() => addon().attention(...args)).toThrow(type);
    expect(() => addon().attention(...args)).toThrow(message);
  });

  it.each(cases)('%s (async rejects)', async (_, mutate, type) => {
    const args = good();
    mutate(args);
    await expect(addon().attentionAsync(...args)).rejects.toThrow(type);
  });

  it('accepts the unmutated call', () => {
    expect(() => addon().attention(...good())).not.toThrow();
  });
});
