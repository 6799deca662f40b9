// NaN and Infinity: a NaN inside a row's visible interval makes that row NaN (never a
// silent zero); rows that cannot see it stay finite; -Infinity in an additive mask masks.
import { describe, expect, it } from 'vitest';
import { attention, backends } from '../lib';
import { rng } from './helpers';

const BACKENDS = ['cpu', 'js'] as const;

function inputs(Sq: number, Skv: number, seed: number) {
  const random = rng(seed);
  const make = (S: number) => ({ data: Float32Array.from({ length: 2 * S * 8 }, () => random() - 0.5), shape: [1, 2, S, 8] });
  return { q: make(Sq), k: make(Skv), v: make(Skv) };
}

const rowsOf = (data: Float32Array, D: number) =>
  Array.from({ length: data.length / D }, (_, r) => Array.from(data.subarray(r * D, (r + 1) * D)));

describe.each(BACKENDS)('non-finite inputs, backend %s', (backend) => {
  const run = backend === 'js' || backends().cpu.available;

  // Sq = Skv = 40: the prefill path; Sq = 1 against 600 keys: the decode path.
  it.runIf(run).each([
    [40, 40],
    [1, 600],
  ])('NaN in one query row poisons that row only (Sq %i, Skv %i)', (Sq, Skv) => {
    const { q, k, v } = inputs(Sq, Skv, 1);
    q.data[0] = NaN; // head 0, query 0
    const { output, lse } = attention(q, k, v, { backend, returnLse: true });
    const rows = rowsOf(output.data, 8);
    expect(rows[0].every(Number.isNaN)).toBe(true);
    expect(Number.isNaN(lse.data[0])).toBe(true);
    for (const row of rows.slice(1)) expect(row.every(Number.isFinite)).toBe(true);
  });

  it.runIf(run)('NaN in a key reaches only the rows that can see it (causal)', () => {
    const { q, k, v } = inputs(40, 40, 2);
    k.data[(0 * 40 + 30) * 8 + 3] = NaN; // head 0, key 30
    const rows = rowsOf(attention(q, k, v, { backend, causal: true }).data, 8);
    for (let i = 0; i < 40; i++) {
      expect(rows[i].every(i >= 30 ? Number.isNaN : Number.isFinite)).toBe(true);
    }
    for (const row of rows.slice(40)) expect(row.every(Number.isFinite)).toBe(true); // head 1
  });

  it.runIf(run).each([
    [40, 40],
    [1, 600],
  ])('a row whose every visible score is NaN is NaN, not zeros (Sq %i, Skv %i)', (Sq, Skv) => {
    const { q, k, v } = inputs(Sq, Skv, 3);
    const D = 8;
    for (let j = 0; j < Skv; j++) k.data[j * D] = NaN; // head 0: every key
    const { output, lse } = attention(q, k, v, { backend, returnLse: true });
    const rows = rowsOf(output.data, D);
    for (let i = 0; i < Sq; i++) expect(rows[i].every(Number.isNaN)).toBe(true);
    for (let i = 0; i < Sq; i++) expect(Number.isNaN(lse.data[i])).toBe(true);
    for (const row of rows.slice(Sq)) expect(row.every(Number.isFinite)).toBe(true);
  });

  it.runIf(run)('keys beyond keyLengths are never read, whatever they hold', () => {
    const { q, k, v } = inputs(1, 600, 4);
    for (let j = 300; j < 600; j++) {
      k.data[j * 8] = NaN;
      v.data[j * 8] = Infinity;
    }
    const out = attention(q, k, v, { backend, keyLengths: [300] });
    expect(Array.from(out.data).every(Number.isFinite)).toBe(true);
  });

  it.runIf(run)('-Infinity in an additive mask masks; a fully -Infinity row is zeros with lse -Infinity', () => {
    const { q, k, v } = inputs(4, 6, 5);
    const mask = new Float32Array(4 * 6).fill(0);
    mask.fill(-Infinity, 0, 6); // query 0: everything masked
    mask[6 + 2] = -Infinity; // query 1: key 2 masked
    const { output, lse } = attention(q, k, v, {
      backend,
      returnLse: true,
      mask: { data: mask, shape: [4, 6] },
    });
    const rows = rowsOf(output.data, 8);
    expect(rows[0]).toEqual(new Array(8).fill(0));
    expect(lse.data[0]).toBe(-Infinity);
    for (const row of rows.slice(1)) expect(row.every(Number.isFinite)).toBe(true);
    const k2 = { ...k, data: k.data.slice() };
    k2.data.fill(1e6, 2 * 8, 3 * 8); // key 2 changed: query 1 must not notice
    const again = rowsOf(attention(q, k2, v, { backend, mask: { data: mask, shape: [4, 6] } }).data, 8);
    expect(again[1]).toEqual(rows[1]);
  });
});
