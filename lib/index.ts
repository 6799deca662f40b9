export { attention, attentionAsync, backends } from './attention';
export type { AttentionOptions, AttentionResult, BackendChoice, BackendsInfo, Layout } from './attention';
export type { NativeCapabilities } from './backends/native';
export type { Causal, MaskOptions } from './masks';
export { contiguousStrides, isContiguous, mergeHeads, splitHeads, tensor } from './tensor';
export type { DType, MaskDType, Tensor, TensorData, TensorLike } from './tensor';
export { KVCache } from './kv-cache';
export type { KVCacheOptions } from './kv-cache';
