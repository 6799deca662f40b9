// Backend 'cuda' and DeviceTensor. Where no device is found (this machine's default build:
// CUDA compiled in, no driver) the errors are checked; where one is — in CI the QKV_CUDA=SHIM
// build, whose kernels and host code run on the CPU — results are checked against the float64
// oracle and the CPU backend. test/attention.test.ts runs its whole matrix on 'cuda' too.
import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, backends, DeviceTensor, type Tensor } from '../lib';
import { nativeAddon } from '../lib/backends/native';
import { childJson, oracle, place, placeAs, randomLogical, readLogical, relativeL2, rng, roundTo, asFloat, TOLERANCE } from './helpers';

const info = backends();
const cuda = info.cuda;
const hasAddon = info.cpu.available;

describe('backend reporting', () => {
  it('backends().cuda says whether CUDA is built, which devices exist, and why not', () => {
    expect(typeof cuda.available).toBe('boolean');
    expect(typeof cuda.reason).toBe('string');
    if (cuda.available) {
      expect(cuda.devices!.length).toBeGreaterThan(0);
      const d = cuda.devices![0];
      expect(d.ordinal).toBe(0);
      expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
      expect(d.totalMemory).toBeGreaterThan(0);
    } else {
      expect(cuda.reason.length).toBeGreaterThan(10);
    }
    if (info.cpu.available) expect(info.cpu.capabilities.cuda).toBe(cuda.built);
  });

  it('backend auto never picks CUDA for host inputs', () => {
    expect(info.default).not.toBe('cuda');
  });
});

const small = () => {
  const r = rng(5);
  return [randomLogical([1, 2, 5, 8], r), randomLogical([1, 2, 9, 8], r), randomLogical([1, 2, 9, 8], r)].map((x) => place(x, 'bhsd'));
};

describe.runIf(!cuda.available)('without a CUDA device', () => {
  it("backend 'cuda' throws an Error carrying the reason", () => {
    const [q, k, v] = small();
    expect(() => attention(q, k, v, { backend: 'cuda' })).toThrow(/backend 'cuda' is unavailable: .{10,}/);
    expect(() => attention(q, k, v, { backend: 'cuda' })).toThrow(cuda.reason);
  });

  it('attentionAsync rejects the same way', async () => {
    const [q, k, v] = small();
    await expect(attentionAsync(q, k, v, { backend: 'cuda' })).rejects.toThrow(/backend 'cuda' is unavailable/);
  });

  it('DeviceTensor cannot be made', () => {
    const [q] = small();
    expect(() => DeviceTensor.from(q)).toThrow(/DeviceTensor needs backend 'cuda', which is unavailable/);
    expect(() => DeviceTensor.empty([2, 2])).toThrow(/unavailable/);
  });

  it.runIf(hasAddon)('the raw binding refuses device memory with the reason', () => {
    const addon = nativeAddon().addon!;
    expect(() => addon.cudaAllocate(0, 64)).toThrow(RangeError);
    expect(() => addon.cudaAllocate(0, 64)).toThrow(/backend 'cuda' is unavailable/);
  });

  it('the CPU backend still works', () => {
    const [q, k, v] = small();
    expect(attention(q, k, v).shape).toEqual([1, 2, 5, 8]);
  });
});

describe.runIf(hasAddon)('raw CUDA binding arguments', () => {
  const addon = () => nativeAddon().addon!;
  it.each([
    ['device not a number', () => addon().cudaAllocate('0' as unknown as number, 8), TypeError, /device must be a number/],
    ['device negative', () => addon().cudaAllocate(-1, 8), RangeError, /device must be an integer/],
    ['bytes fractional', () => addon().cudaAllocate(0, 1.5), RangeError, /bytes must be an integer/],
    ['write to a non-handle', () => addon().cudaWrite({}, 0, new Float32Array(1)), TypeError, /handle must be a device buffer handle/],
    ['read from null', () => addon().cudaRead(null, 0, new Float32Array(1)), TypeError, /handle/],
    ['free a number', () => addon().cudaFree(7), TypeError, /handle must be a device buffer handle/],
  ] as const)('%s', (_, call, type, message) => {
    expect(call).toThrow(type);
    expect(call).toThrow(message);
  });
});

describe.runIf(cuda.available)('backend cuda', () => {
  const addon = () => nativeAddon().addon!;

  it('DeviceTensor.from / toHost round-trips any strides, in every dtype', () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const x = roundTo(randomLogical([2, 3, 5, 7], rng(1)), dtype);
      const d = DeviceTensor.from(placeAs(x, 'strided', dtype));
      expect(d.shape).toEqual([2, 3, 5, 7]);
      expect(d.strides).toEqual([105, 35, 7, 1]);
      expect(d.byteLength).toBe(210 * (dtype === 'float32' ? 4 : 2));
      const back = d.toHost();
      expect(back.dtype).toBe(dtype);
      expect(Array.from(asFloat(back).data)).toEqual(Array.from(x.values));
      d.free();
    }
  });

  it('write() fills elements at an offset; bad writes are refused', () => {
    const d = DeviceTensor.empty([2, 4], 'float32');
    d.write(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    d.write(Float32Array.from([-1, -2]), 5);
    expect(Array.from(d.toHost().data)).toEqual([1, 2, 3, 4, 5, -1, -2, 8]);
    expect(() => d.write(new Float32Array(2), 7)).toThrow(RangeError);
    expect(() => d.write(new Float32Array(2), 7)).toThrow(/elements \[7, 9\) do not fit the tensor's 8/);
    expect(() => d.write(new Uint16Array(2))).toThrow(TypeError);
    expect(() => d.write(new Float32Array(1), -1)).toThrow(RangeError);
    // the binding re-checks the byte range
    expect(() => addon().cudaWrite(d.handle(), 30, new Float32Array(1))).toThrow(/bytes \[30, 34\) lie outside the device buffer of 32 bytes/);
    d.free();
  });

  it('free() is idempotent; a freed tensor (or a view of it) is refused with a TypeError', () => {
    const [q, k, v] = small();
    const kd = DeviceTensor.from(k);
    const view = kd.narrow(2, 4);
    kd.free();
    kd.free();
    expect(kd.freed).toBe(true);
    expect(view.freed).toBe(true);
    expect(() => kd.toHost()).toThrow(TypeError);
    expect(() => attention(q, kd, v)).toThrow(/DeviceTensor was freed/);
    expect(() => attention(q, view, v, { backend: 'cuda' })).toThrow(/DeviceTensor was freed/);
  });

  it('resident q/k/v give the same bits as host inputs, in both layouts', () => {
    for (const layout of ['bhsd', 'bshd'] as const) {
      const r = rng(9);
      const [q, k, v] = [randomLogical([2, 4, 13, 32], r), randomLogical([2, 2, 40, 32], r), randomLogical([2, 2, 40, 32], r)];
      const [qh, kh, vh] = [q, k, v].map((x) => place(x, layout));
      const options = { layout, causal: 'lower-right' as const, returnLse: true as const };
      const host = attention(qh, kh, vh, { ...options, backend: 'cuda' });
      const [qd, kd, vd] = [qh, kh, vh].map((x) => DeviceTensor.from(x));
      const resident = attention(qd, kd, vd, options); // 'auto' picks cuda for device inputs
      expect(resident.output.data).toEqual(host.output.data);
      expect(resident.lse.data).toEqual(host.lse.data);
      const mixed = attention(qh, kd, vd, { ...options, backend: 'cuda' });
      expect(mixed.output.data).toEqual(host.output.data);
      const expected = oracle(q, k, v, { causal: 'lower-right' });
      expect(relativeL2(readLogical(resident.output, layout).values, expected.out.values)).toBeLessThanOrEqual(1e-6);
      for (const d of [qd, kd, vd]) d.free();
    }
  });

  it('a device KV cache: append token by token, attend to the filled prefix (narrow)', () => {
    const [H, D, capacity, steps] = [2, 16, 64, 23];
    const r = rng(21);
    const k = randomLogical([1, H, steps, D], r);
    const v = randomLogical([1, H, steps, D], r);
    const q = randomLogical([1, H, steps, D], r);
    const kb = place(k, 'bshd'); // [1, S, H, D]: token t's keys are H·D contiguous values
    const vb = place(v, 'bshd');
    const qb = place(q, 'bshd');
    const kCache = DeviceTensor.empty([1, capacity, H, D]);
    const vCache = DeviceTensor.empty([1, capacity, H, D]);
    const full = oracle(q, k, v, { causal: true }).out;
    for (let t = 0; t < steps; t++) {
      kCache.write(kb.data.subarray(t * H * D, (t + 1) * H * D), t * H * D);
      vCache.write(vb.data.subarray(t * H * D, (t + 1) * H * D), t * H * D);
      const qt = { data: qb.data.subarray(t * H * D, (t + 1) * H * D), shape: [1, 1, H, D] };
      const out = attention(qt, kCache.narrow(1, t + 1), vCache.narrow(1, t + 1), { layout: 'bshd', causal: 'lower-right' });
      for (let h = 0; h < H; h++) {
        const expected = full.values.subarray((h * steps + t) * D, (h * steps + t + 1) * D);
        expect(relativeL2(out.data.subarray(h * D, (h + 1) * D), expected)).toBeLessThanOrEqual(1e-6);
      }
    }
    kCache.free();
    vCache.free();
  });

  it('attentionAsync reads device memory that JS freed meanwhile (the call holds it)', async () => {
    const r = rng(4);
    const [q, k, v] = [randomLogical([1, 2, 9, 16], r), randomLogical([1, 2, 300, 16], r), randomLogical([1, 2, 300, 16], r)];
    const [kd, vd] = [DeviceTensor.from(place(k, 'bhsd')), DeviceTensor.from(place(v, 'bhsd'))];
    const pending = attentionAsync(place(q, 'bhsd'), kd, vd, { causal: 'lower-right' });
    kd.free();
    vd.free();
    const out = await pending;
    expect(relativeL2(out.data, oracle(q, k, v, { causal: 'lower-right' }).out.values)).toBeLessThanOrEqual(1e-6);
  });

  it('float16 and bfloat16 run on the tensor-core kernel within their tolerances', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const r = rng(31);
      const [q, k, v] = [randomLogical([1, 4, 70, 64], r), randomLogical([1, 2, 90, 64], r), randomLogical([1, 2, 90, 64], r)].map((x) =>
        roundTo(x, dtype),
      );
      const [kd, vd] = [DeviceTensor.from(placeAs(k, 'bhsd', dtype)), DeviceTensor.from(placeAs(v, 'bhsd', dtype))];
      const out = attention(placeAs(q, 'strided', dtype), kd, vd, { causal: true }) as Tensor;
      expect(out.dtype).toBe(dtype);
      expect(relativeL2(asFloat(out).data, oracle(q, k, v, { causal: true }).out.values)).toBeLessThanOrEqual(TOLERANCE[dtype]);
      kd.free();
      vd.free();
    }
  });

  it('the split-KV decode path (few rows, many keys) matches the oracle, masks included', () => {
    const r = rng(12);
    const [q, k, v] = [randomLogical([1, 2, 1, 64], r), randomLogical([1, 2, 2000, 64], r), randomLogical([1, 2, 2000, 64], r)];
    for (const options of [{}, { window: { left: 300 }, causal: 'lower-right' as const }, { keyLengths: [1500] }]) {
      const out = attention(place(q, 'bhsd'), place(k, 'bhsd'), place(v, 'bhsd'), { ...options, backend: 'cuda', returnLse: true });
      const expected = oracle(q, k, v, options);
      expect(relativeL2(out.output.data, expected.out.values)).toBeLessThanOrEqual(1e-6);
      expect(relativeL2(out.lse.data, expected.lse)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('errors name the problem', () => {
    const [q, k, v] = small();
    const kd = DeviceTensor.from(k);
    expect(() => attention(q, kd, v, { backend: 'cpu' })).toThrow(TypeError);
    expect(() => attention(q, kd, v, { backend: 'cpu' })).toThrow(/k is a DeviceTensor \(CUDA memory\), which backend 'cpu' cannot read/);
    expect(() => attention(q, kd, v, { backend: 'js' })).toThrow(/backend 'js' cannot read/);
    expect(() => attention(q, k, v, { backend: 'cpu', device: 0 })).toThrow(/options\.device applies to backend 'cuda' only/);
    expect(() => attention(q, k, v, { backend: 'cuda', device: 5 })).toThrow(RangeError);
    expect(() => attention(q, k, v, { backend: 'cuda', device: 5 })).toThrow(/options\.device must be a CUDA device ordinal in \[0, \d+\), got 5/);
    expect(() => attention(q, kd, v, { backend: 'cuda', device: 1 })).toThrow(/k lives on CUDA device 0, but the call runs on device 1/);
    expect(() => attention(q, kd.narrow(1, 1), v, { backend: 'cuda' })).toThrow(/k and v must have the same heads/);
    const big = randomLogical([1, 1, 2, 129], rng(2));
    expect(() => attention(place(big, 'bhsd'), place(big, 'bhsd'), place(big, 'bhsd'), { backend: 'cuda' })).toThrow(
      /backend 'cuda' supports head dims up to 128 \(q\/k head dim 129, v head dim 129\)/,
    );
    expect(() => DeviceTensor.empty([2, 2], 'bool' as never)).toThrow(TypeError);
    expect(() => kd.narrow(4, 1)).toThrow(/dim must be in \[0, 4\)/);
    expect(() => kd.narrow(2, 10)).toThrow(/length must be in \[0, 9\]/);
    kd.free();
  });
});

// Device failures, emulated by the shim's test hooks (QKV_CUDA_SHIM_CC, QKV_CUDA_SHIM_FAULT)
// in a child process that loads the same shim build.
describe.runIf(cuda.available && cuda.emulated)('unusable devices (CPU shim)', () => {
  const setup = `
    const t = { data: Float32Array.from({ length: 2 * 8 * 16 }, (_, i) => Math.sin(i)), shape: [1, 2, 8, 16] };
    const attempt = () => { try { qkv.attention(t, t, t, { backend: 'cuda' }); return 'ok'; } catch (e) { return e.message; } };
  `;

  it('a device below compute capability 8.0 is not listed, and says why', () => {
    const r = childJson(`${setup} console.log(JSON.stringify({ cuda: qkv.backends().cuda, call: attempt() }));`, { QKV_CUDA_SHIM_CC: '7.5' });
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.devices).toEqual([]);
    expect(r.cuda.reason).toMatch(/compute capability 7\.5; qkv's CUDA kernels need 8\.0 or newer/);
    expect(r.call).toMatch(/backend 'cuda' is unavailable: .*compute capability 7\.5/);
  });

  it('an illegal-address error marks the device unusable, with the reason; the CPU keeps working', () => {
    const r = childJson(`${setup}
      const before = attempt();
      process.env.QKV_CUDA_SHIM_FAULT = 'illegal-address';
      const failing = attempt();
      delete process.env.QKV_CUDA_SHIM_FAULT;
      const after = attempt();
      const cpu = qkv.attention(t, t, t, { backend: 'cpu' }).data.every(Number.isFinite);
      console.log(JSON.stringify({ before, failing, after, cuda: qkv.backends().cuda, cpu }));
    `);
    expect(r.before).toBe('ok');
    expect(r.failing).toMatch(/cudaErrorIllegalAddress/);
    expect(r.after).toMatch(/device 0 is unusable after an unrecoverable error \(attention on the device failed: cudaErrorIllegalAddress/);
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.reason).toMatch(/device 0 is unusable after an unrecoverable error/);
    expect(r.cpu).toBe(true);
  });

  it('one large call does not keep its staging memory: pooled buffers shrink back', () => {
    const r = childJson(`
      const rss = () => process.memoryUsage().rss / 2 ** 20;
      const big = { data: new Float32Array(1 << 26).fill(0.25), shape: [1, 1, 1 << 22, 16] }; // 256 MiB of keys
      const q = { data: new Float32Array(16).fill(0.5), shape: [1, 1, 1, 16] };
      const base = rss();
      qkv.attention(q, big, big, { backend: 'cuda', keyLengths: [1] }); // stages 512 MiB, reads one key
      const small = { data: new Float32Array(64), shape: [1, 1, 4, 16] };
      qkv.attention(small, small, small, { backend: 'cuda' });
      console.log(JSON.stringify({ grown: rss() - base }));
    `);
    expect(r.grown).toBeLessThan(128);
  });
});

describe.runIf(cuda.available)('CUDA limits are checked before a call reaches the device', () => {
  it('backends().cuda.limits states them; a call past them is refused by name', () => {
    expect(cuda.available && cuda.limits).toEqual({ maxHeadDim: 128, maxGrid: 65535 });
    const wide = { data: new Float32Array(65536 * 2), shape: [65536, 1, 1, 2] };
    expect(() => attention(wide, wide, wide, { backend: 'cuda' })).toThrow(
      /backend 'cuda' supports batch and query heads up to 65535 each \(grid limits\), got 65536 and 1/,
    );
    expect(() => attention(wide, wide, wide, { backend: 'cpu' })).not.toThrow();
  });
});
