/* vec512.h — AVX-512 pieces shared by the kit's kernels (nn.c, compute.c);
 * kit-internal, not installed. Functions carry their own target attribute:
 * callers choose them at run time (nn_avx512). */
#ifndef RUNNER_KIT_VEC512_H
#define RUNNER_KIT_VEC512_H

#include <immintrin.h>
#include <stdint.h>

#define AVX512 __attribute__((target("avx512f")))
#define INV_SQRT2 0.70710678118654752440f

/* the lanes of a vector that hold one of the `left` values still to do */
static inline __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
}

/* erf for GELU and its gradient, in half the operations of the
 * exp-based erf used before (Juffa's): |x| in [0, 4)
 * cut into 16 pieces of 1/4, a degree-5 polynomial on each (fitted at
 * Chebyshev nodes; coefficients picked per lane from one register each by
 * vpermps), 1 from 4 on (erf(4) rounds to 1). Absolute error <= 7e-8
 * (about 1 ulp near 1). */
extern const float kit_erf_pieces[6][16] __attribute__((visibility("hidden")));

/* the pieces' coefficients, loaded once per loop so that they stay in
 * registers (6 of the 32) */
typedef struct {
    __m512 c0, c1, c2, c3, c4, c5;
} erf_coefs;

AVX512 static inline erf_coefs erf_coefs_load(void)
{
    return (erf_coefs){_mm512_load_ps(kit_erf_pieces[0]), _mm512_load_ps(kit_erf_pieces[1]),
                       _mm512_load_ps(kit_erf_pieces[2]), _mm512_load_ps(kit_erf_pieces[3]),
                       _mm512_load_ps(kit_erf_pieces[4]), _mm512_load_ps(kit_erf_pieces[5])};
}

AVX512 static inline __m512 erf16_pieces(const erf_coefs *e, __m512 x)
{
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    __m512i xi = _mm512_castps_si512(x);
    __m512i sign = _mm512_and_si512(xi, signbit);
    __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(signbit, xi));
    __mmask16 one = _mm512_cmp_ps_mask(a, _mm512_set1_ps(4.0f), _CMP_GE_OQ);
    __m512 piece = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(4.0f)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    piece = _mm512_min_ps(piece, _mm512_set1_ps(15.0f));
    __m512i k = _mm512_cvttps_epi32(piece);
    __m512 t = _mm512_fnmadd_ps(piece, _mm512_set1_ps(0.25f), a); /* exact: a - piece / 4 */
    __m512 p = _mm512_permutexvar_ps(k, e->c0);
    p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(k, e->c1));
    p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(k, e->c2));
    p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(k, e->c3));
    p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(k, e->c4));
    p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(k, e->c5));
    p = _mm512_mask_blend_ps(one, p, _mm512_set1_ps(1.0f));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(p), sign));
}

/* GELU(v) = v/2 (1 + erf(v / sqrt 2)), the forward's form */
AVX512 static inline __m512 gelu16(const erf_coefs *e, __m512 v)
{
    __m512 r = erf16_pieces(e, _mm512_mul_ps(v, _mm512_set1_ps(INV_SQRT2)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), r));
}

/* 16 floats -> their bfloat16 bit patterns, as compute_bf16_round: round
 * to nearest even, a NaN kept quiet (bit for bit its result, denormals
 * included, which AVX512_BF16's conversion would flush) */
AVX512 static inline __m256i bf16x16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x), hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_set1_epi32(0x7fff));
    r = _mm512_srli_epi32(_mm512_add_epi32(r, _mm512_and_si512(hi, _mm512_set1_epi32(1))), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

/* 1 when the AVX-512 paths are in use and the CPU has AVX512_BF16 (and
 * nn_use_avx512(3) has not turned its instructions off) */
int nn_avx512bf16(void) __attribute__((visibility("hidden")));

/* bf16x16 in one instruction where the CPU has AVX512_BF16: vcvtneps2bf16
 * rounds to nearest even and quiets a NaN the same way, but flushes
 * denormals, so a vector holding one takes bf16x16 (vfpclassps, AVX512DQ,
 * which every CPU with AVX512_BF16 has; nn_avx512bf16 checks both) */
#define AVX512BF16 __attribute__((target("avx512f,avx512dq,avx512bf16")))
AVX512BF16 static inline __m256i bf16x16_hw(__m512 x)
{
    return _mm512_fpclass_ps_mask(x, 0x20) ? bf16x16(x) : (__m256i)_mm512_cvtneps_pbh(x);
}

/* bf16x16_hw of a and b into o[0..32): one test and one conversion for
 * both (vcvtne2ps2bf16). A GELU-to-bf16 loop took 8.7 cycles a vector
 * against 10.7 with a test and a conversion per vector, to_bf16 1.4
 * against 2.0 (Zen 5, in L1) */
AVX512BF16 static inline void bf16x32_hw_store(uint16_t *o, __m512 a, __m512 b)
{
    if (_mm512_fpclass_ps_mask(a, 0x20) | _mm512_fpclass_ps_mask(b, 0x20)) {
        _mm256_storeu_si256((__m256i *)o, bf16x16(a));
        _mm256_storeu_si256((__m256i *)(o + 16), bf16x16(b));
    } else {
        _mm512_storeu_si512(o, (__m512i)_mm512_cvtne2ps_pbh(b, a)); /* a in the low half */
    }
}

#endif
