// nvcc translation unit for the tensor-core tile kernel (compile and spill check only).
#include "mma.cuh"
