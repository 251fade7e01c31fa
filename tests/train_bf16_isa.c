/* train_bf16_isa.c — tests/train_bf16.c with oneDNN capped at AVX2 (a CPU
 * without AVX-512): train.precision = "bf16" falls back to float32. */
#define CAP_AVX2 1
#include "train_bf16.c"
