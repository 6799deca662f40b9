// Writes small ONNX models for the onnxruntime-node peer and cross-checks, as protobuf bytes,
// so no model files or Python are needed. Only the few ModelProto fields these graphs use.

// --- protobuf wire format -------------------------------------------------------------
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const key = (field, wire) => varint((field << 3) | wire);
const intField = (field, n) => [...key(field, 0), ...varint(n)];
const bytesField = (field, bytes) => [...key(field, 2), ...varint(bytes.length), ...bytes];
const stringField = (field, s) => bytesField(field, [...Buffer.from(s, 'utf8')]);
const floatField = (field, x) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return [...key(field, 5), ...b];
};

// --- ONNX messages (field numbers from onnx.proto) -------------------------------------
const ELEM_TYPE = { float32: 1, float16: 10, bfloat16: 16 };

function valueInfo(name, dtype, dims) {
  const shape = dims.flatMap((d) => bytesField(1, typeof d === 'number' ? intField(1, d) : stringField(2, d)));
  const tensorType = [...intField(1, ELEM_TYPE[dtype]), ...bytesField(2, shape)];
  return [...stringField(1, name), ...bytesField(2, bytesField(1, tensorType))];
}

function attribute(name, value) {
  // AttributeType: FLOAT = 1, INT = 2
  return Number.isInteger(value) && !(typeof value === 'object')
    ? [...stringField(1, name), ...intField(3, value), ...intField(20, 2)]
    : [...stringField(1, name), ...floatField(2, value.float), ...intField(20, 1)];
}

function nodeProto({ name, opType, domain, inputs, outputs, attributes = {} }) {
  return [
    ...inputs.flatMap((i) => stringField(1, i)),
    ...outputs.flatMap((o) => stringField(2, o)),
    ...stringField(3, name),
    ...stringField(4, opType),
    ...Object.entries(attributes).flatMap(([n, v]) => bytesField(5, attribute(n, v))),
    ...(domain ? stringField(7, domain) : []),
  ];
}

/** TensorProto of float32 data (raw_data). */
function tensorProto(name, dims, data) {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return [...dims.flatMap((d) => intField(1, d)), ...intField(2, 1), ...stringField(8, name), ...bytesField(9, raw)];
}

/** A graph of `nodes` (or of one node: opType, domain, attributes over all inputs/outputs). */
function model({ opType, domain, opsets, inputs, outputs, attributes, nodes, initializers = [] }) {
  const list = nodes ?? [{ name: 'attention', opType, domain, attributes, inputs: inputs.map((i) => i.name), outputs: outputs.map((o) => o.name) }];
  const graph = [
    ...list.flatMap((n) => bytesField(1, nodeProto(n))),
    ...stringField(2, 'qkv-peer'),
    ...initializers.flatMap((t) => bytesField(5, tensorProto(t.name, t.dims, t.data))),
    ...inputs.flatMap((i) => bytesField(11, valueInfo(i.name, i.dtype, i.dims))),
    ...outputs.flatMap((o) => bytesField(12, valueInfo(o.name, o.dtype, o.dims))),
  ];
  const opsetImports = opsets.flatMap(([d, v]) => bytesField(8, [...stringField(1, d), ...intField(2, v)]));
  return Uint8Array.from([...intField(1, 8), ...opsetImports, ...bytesField(7, graph)]);
}

/**
 * com.microsoft MultiHeadAttention: query [B, Sq, Hq·D], key [B, Skv, Hq·D], value
 * [B, Skv, Hq·Dv] → output [B, Sq, Hq·Dv]. No GQA (the op needs Hkv = Hq).
 */
export function multiHeadAttentionModel({ heads, causal, scale, dtype = 'float32' }) {
  return model({
    opType: 'MultiHeadAttention',
    domain: 'com.microsoft',
    opsets: [['', 17], ['com.microsoft', 1]],
    inputs: [
      { name: 'query', dtype, dims: ['B', 'Sq', 'E'] },
      { name: 'key', dtype, dims: ['B', 'Skv', 'E'] },
      { name: 'value', dtype, dims: ['B', 'Skv', 'Ev'] },
    ],
    outputs: [{ name: 'output', dtype, dims: ['B', 'Sq', 'Ev'] }],
    attributes: { num_heads: heads, unidirectional: causal ? 1 : 0, ...(scale ? { scale: { float: scale } } : {}) },
  });
}

/**
 * ONNX Attention (opset 23): Q [B, Hq, Sq, D], K [B, Hkv, Skv, D], V [B, Hkv, Skv, Dv] →
 * Y [B, Hq, Sq, Dv]; supports GQA.
 */
export function attentionModel({ causal, dtype = 'float32' }) {
  return model({
    opType: 'Attention',
    domain: '',
    opsets: [['', 23]],
    inputs: [
      { name: 'Q', dtype, dims: ['B', 'Hq', 'Sq', 'D'] },
      { name: 'K', dtype, dims: ['B', 'Hkv', 'Skv', 'D'] },
      { name: 'V', dtype, dims: ['B', 'Hkv', 'Skv', 'Dv'] },
    ],
    outputs: [{ name: 'Y', dtype, dims: ['B', 'Hq', 'Sq', 'Dv'] }],
    attributes: { is_causal: causal ? 1 : 0 },
  });
}

/**
 * A whole attention layer as PyTorch's nn.MultiheadAttention computes it: input projections
 * (MatMul + Add; weights given transposed, [in, out]), com.microsoft MultiHeadAttention, output
 * projection. query [B, Sq, E], key [B, Skv, kDim], value [B, Skv, vDim] → output [B, Sq, E].
 * The weights (wq [E, E], bq, wk [kDim, E], bk, wv [vDim, E], bv, wo [E, E], bo) are graph
 * inputs, or constant initializers when given as `weights: { wq: { dims, data }, … }` (so ONNX
 * Runtime can pre-pack them, as it would for a real model).
 */
export function multiHeadAttentionLayerModel({ heads, causal = false, weights }) {
  const f = (name, dims) => ({ name, dtype: 'float32', dims });
  const weightInputs = [
    f('wq', ['E', 'Hq']), f('bq', ['Hq']), f('wk', ['Kd', 'Hq']), f('bk', ['Hq']),
    f('wv', ['Vd', 'Hv']), f('bv', ['Hv']), f('wo', ['Hv', 'E']), f('bo', ['E']),
  ];
  const linear = (x, w, b, out) => [
    { name: `${out}_matmul`, opType: 'MatMul', inputs: [x, w], outputs: [`${out}_mm`] },
    { name: `${out}_bias`, opType: 'Add', inputs: [`${out}_mm`, b], outputs: [out] },
  ];
  return model({
    opsets: [['', 17], ['com.microsoft', 1]],
    inputs: [f('query', ['B', 'Sq', 'E']), f('key', ['B', 'Skv', 'Kd']), f('value', ['B', 'Skv', 'Vd']), ...(weights ? [] : weightInputs)],
    initializers: weights ? Object.entries(weights).map(([name, t]) => ({ name, dims: t.dims, data: t.data })) : [],
    outputs: [f('output', ['B', 'Sq', 'E'])],
    nodes: [
      ...linear('query', 'wq', 'bq', 'q'),
      ...linear('key', 'wk', 'bk', 'k'),
      ...linear('value', 'wv', 'bv', 'v'),
      {
        name: 'attention', opType: 'MultiHeadAttention', domain: 'com.microsoft', inputs: ['q', 'k', 'v'], outputs: ['attended'],
        attributes: { num_heads: heads, unidirectional: causal ? 1 : 0 },
      },
      ...linear('attended', 'wo', 'bo', 'output'),
    ],
  });
}
