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
