// nvcc translation unit for the SIMT kernel (CI compiles it for sm_80 and sm_90 with
// -Xptxas -v and fails on local-memory spills; no GPU is needed to compile).
#include "attention_simt.cuh"
