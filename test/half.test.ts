// float16 / bfloat16 conversions: exhaustive round trips and round-to-nearest-even.
import { describe, expect, it } from 'vitest';
import { bf16ToFloat, f16ToFloat, floatToBf16, floatToF16 } from '../lib/half';

describe('float16', () => {
  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16ToFloat(h);
      if (Number.isNaN(x)) expect(Number.isNaN(f16ToFloat(floatToF16(x)))).toBe(true);
      else expect(floatToF16(x)).toBe(h);
    }
  });

  it('rounds to nearest, ties to even', () => {
    expect(floatToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even (1.0)
    expect(floatToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (1 + 2^-9)
    expect(floatToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(floatToF16(65504)).toBe(0x7bff);
    expect(floatToF16(65519)).toBe(0x7bff);
    expect(floatToF16(65520)).toBe(0x7c00); // overflow → inf
    expect(floatToF16(-Infinity)).toBe(0xfc00);
    expect(floatToF16(2 ** -25)).toBe(0); // subnormal tie → even (0)
    expect(floatToF16(3 * 2 ** -26)).toBe(1);
    expect(floatToF16(2 ** -24)).toBe(1);
    expect(floatToF16(-0)).toBe(0x8000);
  });
});

describe('bfloat16', () => {
  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = bf16ToFloat(h);
      if (Number.isNaN(x)) expect(Number.isNaN(bf16ToFloat(floatToBf16(x)))).toBe(true);
      else expect(floatToBf16(x)).toBe(h);
    }
  });

  it('rounds to nearest, ties to even', () => {
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(floatToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(floatToBf16(3.4028234663852886e38)).toBe(0x7f80); // rounds up to inf
  });
});

describe('Float16Array inputs (where the runtime has Float16Array)', () => {
  // Node 20 has no Float16Array: a Uint16Array subclass stands in for it. qkv never indexes a
  // Float16Array, it only views its memory as bits, which is what this exercises.
  it('are read as float16 bits and give a Float16Array back', async () => {
    const { attention, attentionAsync, mergeHeads } = await import('../lib');
    const g = globalThis as { Float16Array?: unknown };
    const real = g.Float16Array;
    class FakeFloat16Array extends Uint16Array {}
    if (real === undefined) g.Float16Array = FakeFloat16Array;
    try {
      const F16 = g.Float16Array as typeof Uint16Array;
      const n = 2 * 5 * 8;
      const bits = Uint16Array.from({ length: n }, (_, i) => floatToF16(Math.sin(i)));
      const viaBits = attention(
        { data: bits, shape: [1, 2, 5, 8], dtype: 'float16' },
        { data: bits, shape: [1, 2, 5, 8], dtype: 'float16' },
        { data: bits, shape: [1, 2, 5, 8], dtype: 'float16' },
        { causal: true },
      );
      // Fill the stand-in with the same bits (a real Float16Array would be filled with numbers).
      const halves = new F16(n);
      new Uint16Array(halves.buffer).set(bits);
      const t = { data: halves, shape: [1, 2, 5, 8] };
      const out = attention(t, t, t, { causal: true });
      expect(out.dtype).toBe('float16');
      expect(out.data).toBeInstanceOf(F16);
      expect(Array.from(new Uint16Array(out.data.buffer))).toEqual(Array.from(viaBits.data));
      const merged = mergeHeads(out);
      expect(merged.data).toBeInstanceOf(F16);
      expect(new Uint16Array(merged.data.buffer)[8]).toBe(new Uint16Array(out.data.buffer)[5 * 8]); // (s0, h1, d0)
      const outAsync = await attentionAsync(t, t, t, { causal: true, backend: 'js' });
      expect(Array.from(new Uint16Array(outAsync.data.buffer))).toEqual(Array.from(viaBits.data));
    } finally {
      if (real === undefined) delete g.Float16Array;
    }
  });
});
