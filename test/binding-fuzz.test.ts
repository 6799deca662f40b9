// Randomised calls to the raw binding: valid calls mutated at random (header numbers, array
// kinds and lengths, arguments replaced by anything). Each call must succeed or throw a
// TypeError/RangeError; nothing may crash (CI also runs this under ASan + UBSan).
import { describe, expect, it } from 'vitest';
import { backends } from '../lib';
import { headerLayout, nativeAddon } from '../lib/backends/native';
import { rng } from './helpers';

const ITERATIONS = process.env.QKV_SANITIZED ? 1500 : 6000;

describe.runIf(backends().cpu.available)('raw binding under random mutation', () => {
  it(`survives ${ITERATIONS} mutated calls, sync and async`, async () => {
    const addon = nativeAddon().addon!;
    const random = rng(20261125);
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(xs: T[]): T => xs[int(xs.length)];
    const weird = [0, -1, 1, 2, 3, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, -(2 ** 53), 1e300, 7, 64, 129];
    const arrays = (length: number) => [
      new Float32Array(length),
      new Uint16Array(length),
      new Uint8Array(length),
      new Int32Array(length),
      new Float64Array(length),
      new Float32Array(new SharedArrayBuffer(length * 4)),
    ];
    const junk = () => pick<unknown>([null, undefined, 0, 'x', {}, [], () => 1, new ArrayBuffer(8), ...arrays(int(50))]);

    const HEADER = headerLayout();
    const valid = () => {
      const [B, Hq, Hkv, Sq, Skv, D, Dv] = [1 + int(2), 2, 1 + int(2), 1 + int(40), 1 + int(300), 1 + int(33), 1 + int(33)];
      const header = new Float64Array(HEADER.length);
      const put = (at: number, shape: number[]) =>
        header.set([...shape, shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1], at);
      put(HEADER.qShape, [B, Hq, Sq, D]);
      put(HEADER.kShape, [B, Hkv, Skv, D]);
      put(HEADER.vShape, [B, Hkv, Skv, Dv]);
      put(HEADER.outShape, [B, Hq, Sq, Dv]);
      put(HEADER.lseShape, [B, Hq, Sq, 1]);
      header.set([0, 0, Skv, 1], HEADER.maskStrides);
      header[HEADER.scale] = 0.3;
      header[HEADER.windowLeft] = -1;
      header[HEADER.windowRight] = -1;
      const f = (n: number) => Float32Array.from({ length: n }, () => random() - 0.5);
      return [
        header,
        f(B * Hq * Sq * D),
        f(B * Hkv * Skv * D),
        f(B * Hkv * Skv * Dv),
        new Float32Array(B * Hq * Sq * Dv),
        random() < 0.5 ? new Float32Array(B * Hq * Sq) : null,
        null,
        random() < 0.3 ? Int32Array.from({ length: B }, () => int(Skv + 1)) : null,
        random() < 0.3 ? Float32Array.from({ length: Hq }, () => random()) : null,
      ] as unknown[];
    };

    let succeeded = 0;
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const args = valid();
      const header = args[0] as Float64Array;
      for (let m = int(4); m >= 0; m--) {
        const what = int(10);
        if (what < 5) header[int(HEADER.length)] = pick(weird);
        else if (what < 7) args[1 + int(8)] = pick(arrays(int(400)));
        else if (what < 8) args[int(9)] = junk();
        else if (what < 9) {
          header[HEADER.maskKind] = 1 + int(2);
          args[6] = header[HEADER.maskKind] === 1 ? new Uint8Array(int(2000)) : new Float32Array(int(2000));
        } else args.length = int(10);
      }
      try {
        if (i % 4 === 0) pending.push(addon.attentionAsync(...args).then(() => succeeded++, (e) => expect([TypeError, RangeError]).toContain(e.constructor)));
        else {
          addon.attention(...args);
          succeeded++;
        }
      } catch (e) {
        expect([TypeError, RangeError]).toContain((e as Error).constructor);
      }
    }
    await Promise.all(pending);
    expect(succeeded).toBeGreaterThan(ITERATIONS / 100); // the mutations leave some calls valid
  }, 120_000);
});

describe.runIf(backends().cpu.available)('raw linear and CUDA functions under random arguments', () => {
  it('every call succeeds or throws a TypeError/RangeError', () => {
    const addon = nativeAddon().addon!;
    const random = rng(7);
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(xs: T[]): T => xs[int(xs.length)];
    const numbers = [0, -1, 1, 2, 3, 7, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 1e300, 64, 129, 300];
    const values = (): unknown => {
      const n = int(700);
      return pick<unknown>([
        pick(numbers), null, undefined, 'x', {}, [], new Float32Array(n), new Float32Array(new SharedArrayBuffer(n * 4)),
        new Uint16Array(n), new Float64Array(n), new Uint8Array(n),
      ]);
    };
    const handle = addon.linearPack(new Float32Array(300 * 7), 300, 7, new Float32Array(300));
    let succeeded = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const rows = int(5);
      const valid: unknown[][] = [
        [handle, new Float32Array(rows * 7), rows, new Float32Array(rows * 300), int(3)],
        [new Float32Array(12), 3, 4, random() < 0.5 ? null : new Float32Array(3)],
      ];
      const which = int(4);
      const args = [...valid[which % 2]];
      for (let m = int(3); m > 0; m--) args[int(args.length + 1)] = values();
      try {
        if (which === 0) addon.linearForward(...(args as Parameters<typeof addon.linearForward>));
        else if (which === 1) addon.linearPack(...(args as Parameters<typeof addon.linearPack>));
        else if (which === 2) addon.cudaWrite(args[0], args[1] as number, args[2] as ArrayBufferView);
        else addon.cudaAllocate(args[1] as number, args[2] as number);
        succeeded++;
      } catch (e) {
        expect([TypeError, RangeError]).toContain((e as Error).constructor);
      }
    }
    expect(succeeded).toBeGreaterThan(ITERATIONS / 100);
  }, 120_000);
});
