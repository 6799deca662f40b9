import { attention, tensor } from 'qkv';

const [B, H, S, D] = [1, 8, 128, 64];
const random = () => tensor(Float32Array.from({ length: B * H * S * D }, () => Math.random() - 0.5), [B, H, S, D]);
const q = random(), k = random(), v = random();

const out = attention(q, k, v, { causal: true }); // Float32Array data, shape [B, H, S, D]
console.log(out.shape, out.data.slice(0, 4));
