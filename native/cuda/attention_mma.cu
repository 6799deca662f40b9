// nvcc translation unit for the tensor-core attention kernel (compile and spill check).
#include "attention_mma.cuh"
