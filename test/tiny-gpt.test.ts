// The example decoder (examples/tiny-gpt) end to end: qkv's native path with KV caches against
// the same model on the pure-JS backend recomputing the whole sequence at every step.
import { describe, expect, it } from 'vitest';
import * as qkv from '../lib';
// @ts-expect-error: an untyped example module
import { argmaxLast, TinyGPT } from '../examples/tiny-gpt/model.mjs';
import { relativeL2 } from './helpers';

const config = { vocab: 97, embedDim: 64, numHeads: 4, numKvHeads: 2, layers: 3, maxSeq: 64, seed: 3 };

describe.runIf(qkv.backends().cpu.available)('tiny GPT decoder', () => {
  const prompt = [5, 17, 3, 88, 41, 9, 60];
  const steps = 14;

  it('cached greedy decoding gives the same logits and tokens as pure-JS full recompute', () => {
    const fast = new TinyGPT(qkv, config, 'cpu');
    const reference = new TinyGPT(qkv, config, 'js');
    const caches = fast.newCaches();
    let logits: Float32Array = fast.forward(prompt, caches);
    const sequence = [...prompt];
    const expectedPrefill: Float32Array = reference.forward(prompt);
    expect(relativeL2(logits, expectedPrefill)).toBeLessThanOrEqual(1e-5);
    for (let i = 0; i < steps; i++) {
      const expected: Float32Array = reference.forward(sequence); // full recompute, [T, vocab]
      const lastExpected = expected.subarray(expected.length - config.vocab);
      const lastCached = logits.subarray(logits.length - config.vocab);
      expect(relativeL2(lastCached, lastExpected)).toBeLessThanOrEqual(1e-5);
      const token = argmaxLast(logits, config.vocab);
      expect(token).toBe(argmaxLast(expected, config.vocab));
      sequence.push(token);
      logits = fast.forward([token], caches);
    }
    expect(new Set(sequence.slice(prompt.length)).size).toBeGreaterThan(2); // not a degenerate model
  });

  it('cached decoding equals full recompute on the native backend too', () => {
    const model = new TinyGPT(qkv, config, 'cpu');
    const tokens: number[] = model.generate(prompt, steps);
    const full: Float32Array = model.forward([...prompt, ...tokens.slice(0, -1)]);
    const caches = model.newCaches();
    const cached: Float32Array[] = [model.forward(prompt, caches)];
    for (const t of tokens.slice(0, -1)) cached.push(model.forward([t], caches));
    const stitched = new Float32Array(full.length);
    let at = 0;
    for (const c of cached) {
      stitched.set(c, at);
      at += c.length;
    }
    expect(relativeL2(stitched, full)).toBeLessThanOrEqual(1e-6);
  });
});
