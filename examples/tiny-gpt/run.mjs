// Greedy decoding with a tiny GPT-style model on qkv (native projections and attention, one
// KV cache per layer), timed against the same model on qkv's pure-JS backend recomputing the
// whole sequence each step (what a framework without a cache would do).
//   node examples/tiny-gpt/run.mjs [tokens]
import * as qkv from 'qkv';
import { argmaxLast, TinyGPT } from './model.mjs';

const steps = Number(process.argv[2] ?? 64);
const prompt = Array.from(Buffer.from('The quick brown fox'));
const model = new TinyGPT(qkv);

const t0 = performance.now();
const tokens = model.generate(prompt, steps);
const seconds = (performance.now() - t0) / 1000;
console.log(`qkv (${qkv.backends().default}, KV cache): ${steps} tokens in ${seconds.toFixed(3)} s = ${(steps / seconds).toFixed(1)} tokens/s`);

const reference = new TinyGPT(qkv, undefined, 'js');
const jsSteps = Math.min(steps, 8);
const t1 = performance.now();
const sequence = [...prompt];
for (let i = 0; i < jsSteps; i++) sequence.push(argmaxLast(reference.forward(sequence), reference.vocab));
const jsSeconds = (performance.now() - t1) / 1000;
console.log(`pure JS, full recompute: ${jsSteps} tokens in ${jsSeconds.toFixed(3)} s = ${(jsSteps / jsSeconds).toFixed(1)} tokens/s`);
const same = tokens.slice(0, jsSteps).every((t, i) => t === sequence[prompt.length + i]);
console.log(`first ${jsSteps} tokens identical: ${same}`);
console.log('tokens:', tokens.join(' '));
