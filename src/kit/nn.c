/* nn.c — transformer layer kernels, forward/backward pairs (see nn.h).
 * GEMMs go to oneDNN (compute.h); the rest are OpenMP loops. GELU's
 * erf and the softmax's exp have AVX-512 versions chosen at run time (GELU
 * forward and backward also AVX2 ones, the same bits); otherwise libm's
 * erff/expf. */
#include "runner/kit/nn.h"

#include "runner/kit/compute.h"
#include "vec512.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

static int use_avx512 = -1, use_avx2 = -1, use_avx512bf16 = -1;

int nn_avx512(void)
{
    if (use_avx512 < 0) {
        __builtin_cpu_init();
        use_avx512 = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return use_avx512;
}

int nn_avx512bf16(void)
{
    if (use_avx512bf16 < 0) {
        __builtin_cpu_init();
        use_avx512bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512dq") ? 1 : 0;
    }
    return nn_avx512() && use_avx512bf16;
}

/* AVX2 with FMA (every CPU with AVX2 has FMA3; both are checked): GELU's
 * 8-lane path where there is no AVX-512 */
static int nn_avx2(void)
{
    if (use_avx2 < 0) {
        __builtin_cpu_init();
        use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return use_avx2;
}

/* whether x[0..k) holds a NaN or an infinity (exponent all ones) */
static int block_nonfinite(const float *x, int64_t k)
{
    uint32_t any = 0;
    for (int64_t i = 0; i < k; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return any != 0;
}

/* the same, 16 at a time: the embed run checks every token's last hidden
 * state between batches, while the other threads wait (scalar, 0.36 % of
 * a bf16 encode's samples on a Zen 5) */
__attribute__((target("avx512f"))) static int block_nonfinite_avx512(const float *x, int64_t k)
{
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 any = 0;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16)
        any |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_loadu_si512(x + i), e), e);
    if (i < k) {
        const __mmask16 m = tail_mask(k - i);
        any |= _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + i), e), e);
    }
    return any != 0;
}

int64_t nn_first_nonfinite(const float *x, int64_t n)
{
    enum { BLOCK = 4096 };
    const int fast = nn_avx512();
    for (int64_t at = 0; at < n; at += BLOCK) {
        int64_t k = n - at < BLOCK ? n - at : BLOCK;
        const int any = fast ? block_nonfinite_avx512(x + at, k) : block_nonfinite(x + at, k);
        for (int64_t i = 0; any && i < k; i++)
            if (!isfinite(x[at + i]))
                return at + i;
    }
    return -1;
}

void nn_use_avx512(int on)
{
    use_avx512 = use_avx2 = use_avx512bf16 = -1;
    if (nn_avx512() && on != 1 && on != 3)
        use_avx512 = 0;
    if (on == 3)
        use_avx512bf16 = 0;
    if (nn_avx2() && on == 0)
        use_avx2 = 0;
}

/* ---- vector exp and erf's pieces (AVX-512) ------------------------------------------- */

/* exp: n = round(x log2 e), r = x - n ln 2 (two-part), Cephes' expf
 * polynomial on r, scaled by 2^n. ~1 ulp. NaN passes. One set of
 * constants for exp16 and its AVX2 twin exp8, which must give the same
 * bits: clamps, log2 e, ln 2 in two parts, the polynomial from its
 * highest coefficient. */
static const float EXP_LO = -104.0f, EXP_HI = 88.7f, EXP_LOG2E = 1.44269504088896341f;
static const float EXP_LN2[2] = {0.693359375f, -2.12194440e-4f};
static const float EXP_POLY[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                  4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

AVX512 static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[0]), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[1]), r);
    __m512 p = _mm512_set1_ps(EXP_POLY[0]);
    for (int j = 1; j < 6; j++)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_POLY[j]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n); /* p 2^n */
}

/* the pieces of erf16_pieces (vec512.h) */
const float kit_erf_pieces[6][16] __attribute__((aligned(64))) = {
{1.035279930e-01f, 4.532615095e-02f, -2.703504823e-02f, -6.670918316e-02f, -6.106119603e-02f, -3.064391576e-02f, -2.303251997e-03f, 1.132802200e-02f, 1.244421210e-02f, 8.360578679e-03f, 4.236414097e-03f, 1.727707335e-03f, 5.842621322e-04f, 1.665797608e-04f, 4.045955575e-05f, 8.430451089e-06f},
{3.473329823e-03f, 1.370849609e-01f, 1.923905909e-01f, 1.538460255e-01f, 6.649812311e-02f, -1.083057746e-02f, -4.794173315e-02f, -4.924307019e-02f, -3.418055922e-02f, -1.843130775e-02f, -8.114697412e-03f, -2.988355467e-03f, -9.333863854e-04f, -2.494553046e-04f, -5.739088374e-05f, -1.141547727e-05f},
{-3.766311705e-01f, -3.104997277e-01f, -1.476458609e-01f, 2.641994506e-02f, 1.387420297e-01f, 1.681413949e-01f, 1.391726881e-01f, 9.029367566e-02f, 4.818367958e-02f, 2.163982205e-02f, 8.285691030e-03f, 2.726646606e-03f, 7.753649843e-04f, 1.912605658e-04f, 4.104059190e-05f, 7.677233953e-06f},
{3.147227471e-05f, -2.649250627e-01f, -4.393229485e-01f, -4.821781218e-01f, -4.151301682e-01f, -2.956868708e-01f, -1.784196347e-01f, -9.236383438e-02f, -4.133149981e-02f, -1.606524922e-02f, -5.441987421e-03f, -1.610327745e-03f, -4.169766617e-04f, -9.460662113e-05f, -1.882726792e-05f, -3.288972493e-06f},
{1.128378510e+00f, 1.060012460e+00f, 8.787811399e-01f, 6.429306865e-01f, 4.151079953e-01f, 2.365218848e-01f, 1.189308017e-01f, 5.277515203e-02f, 2.066693082e-02f, 7.142212708e-03f, 2.178205177e-03f, 5.862363614e-04f, 1.392365957e-04f, 2.918362588e-05f, 5.397949735e-06f, 8.810908412e-07f},
{2.500757823e-09f, 2.763263881e-01f, 5.204998851e-01f, 7.111556530e-01f, 8.427007794e-01f, 9.229001403e-01f, 9.661051631e-01f, 9.866716862e-01f, 9.953222871e-01f, 9.985373020e-01f, 9.995930195e-01f, 9.998993874e-01f, 9.999778867e-01f, 9.999957085e-01f, 9.999992847e-01f, 9.999998808e-01f},
};

/* ---- embeddings -------------------------------------------------------------- */

void embeddings_forward(float *out, const int32_t *ids, const int32_t *pos,
                        const int32_t *types, int N, int C, const float *wte,
                        const float *wpe, const float *wtt)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float *o = out + (int64_t)i * C;
        const float *w = wte + (int64_t)ids[i] * C, *p = wpe + (int64_t)pos[i] * C;
        const float *t = wtt + (int64_t)(types ? types[i] : 0) * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = w[c] + p[c] + t[c];
    }
}

void embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                         const int32_t *ids, const int32_t *pos, const int32_t *types,
                         int N, int C)
{
    /* threads own channel blocks, so scattering rows never races */
    enum { BLK = 32 };
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += BLK) {
        int c1 = c0 + BLK < C ? c0 + BLK : C;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (int64_t)i * C;
            float *w = dwte ? dwte + (int64_t)ids[i] * C : NULL;
            float *p = dwpe ? dwpe + (int64_t)pos[i] * C : NULL;
            float *t = dwtt ? dwtt + (int64_t)(types ? types[i] : 0) * C : NULL;
            for (int c = c0; c < c1; c++) {
                if (w)
                    w[c] += d[c];
                if (p)
                    p[c] += d[c];
                if (t)
                    t[c] += d[c];
            }
        }
    }
}

/* ---- linear --------------------------------------------------------------------- */

void linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                    int out)
{
    /* rows start as the bias and the GEMM adds into them (beta = 1): one
     * pass over y instead of a separate zeroing plus a bias pass */
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            memcpy(y + (int64_t)i * out, b, (size_t)out * sizeof *b);
    }
    compute_sgemm('N', 'T', N, out, in, 1.0f, x, in, W, in, b ? 1.0f : 0.0f, y, out);
}


/* sum over rows of m (N,C) added into acc (C) */
static void column_sums_add(float *acc, const float *m, int N, int C)
{
    enum { BLK = 64 };
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += BLK) {
        int c1 = c0 + BLK < C ? c0 + BLK : C;
        float s[BLK] = {0};
        for (int i = 0; i < N; i++) {
            const float *r = m + (int64_t)i * C;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                s[c - c0] += r[c];
        }
        for (int c = c0; c < c1; c++)
            acc[c] += s[c - c0];
    }
}

void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int N, int in, int out)
{
    if (dx) /* (N,in) += (N,out) (out,in) */
        compute_sgemm('N', 'N', N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    if (dW) /* (out,in) += (N,out)^T (N,in) */
        compute_sgemm('T', 'N', out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db)
        column_sums_add(db, dy, N, out);
}

/* ---- LayerNorm -------------------------------------------------------------------- */

/* One row of LayerNorm given its sum: o (C) = (r - mean) * rstd * w + b,
 * with mean and rstd stored when asked. r and o may be the same row. */
static inline void layernorm_row(float *o, const float *r, float sum, const float *w, const float *b,
                                 int C, float eps, float *mean, float *rstd)
{
    float m = sum / (float)C, v = 0;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++)
        v += (r[c] - m) * (r[c] - m);
    float rs = 1.0f / sqrtf(v / (float)C + eps);
#pragma omp simd
    for (int c = 0; c < C; c++)
        o[c] = (r[c] - m) * rs * w[c] + b[c];
    if (mean)
        *mean = m;
    if (rstd)
        *rstd = rs;
}

void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int N, int C, float eps)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *r = x + (int64_t)i * C;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += r[c];
        layernorm_row(y + (int64_t)i * C, r, s, w, b, C, eps, mean ? mean + i : NULL, rstd ? rstd + i : NULL);
    }
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const float *mean, const float *rstd, int N, int C)
{
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *g = dy + (int64_t)i * C, *r = x + (int64_t)i * C;
            float *d = dx + (int64_t)i * C;
            float m = mean[i], rs = rstd[i], a = 0, bsum = 0;
#pragma omp simd reduction(+ : a, bsum)
            for (int c = 0; c < C; c++) {
                float dn = g[c] * w[c];
                a += dn;
                bsum += dn * (r[c] - m) * rs;
            }
            a /= (float)C;
            bsum /= (float)C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                d[c] += (g[c] * w[c] - a - (r[c] - m) * rs * bsum) * rs;
        }
    }
    if (dw || db) {
        enum { BLK = 64 };
#pragma omp parallel for schedule(static)
        for (int c0 = 0; c0 < C; c0 += BLK) {
            int c1 = c0 + BLK < C ? c0 + BLK : C;
            float sw[BLK] = {0}, sb[BLK] = {0};
            for (int i = 0; i < N; i++) {
                const float *g = dy + (int64_t)i * C, *r = x + (int64_t)i * C;
                float m = mean[i], rs = rstd[i];
#pragma omp simd
                for (int c = c0; c < c1; c++) {
                    sw[c - c0] += g[c] * (r[c] - m) * rs;
                    sb[c - c0] += g[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dw)
                    dw[c] += sw[c - c0];
                if (db)
                    db[c] += sb[c - c0];
            }
        }
    }
}

/* one row of residual_layernorm_forward in AVX-512: o = LN(ra + rb), the
 * sum s kept when asked; two partial sums per pass */
AVX512 static void residual_ln_row_avx512(float *o, float *rs, const float *ra, const float *rb,
                                          const float *w, const float *bias, int C, float eps,
                                          float *mean, float *rstd)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int c = 0;
    for (; c + 32 <= C; c += 32) {
        __m512 x0 = _mm512_add_ps(_mm512_loadu_ps(ra + c), _mm512_loadu_ps(rb + c));
        __m512 x1 = _mm512_add_ps(_mm512_loadu_ps(ra + c + 16), _mm512_loadu_ps(rb + c + 16));
        _mm512_storeu_ps(o + c, x0);
        _mm512_storeu_ps(o + c + 16, x1);
        s0 = _mm512_add_ps(s0, x0);
        s1 = _mm512_add_ps(s1, x1);
    }
    for (; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, ra + c), _mm512_maskz_loadu_ps(m, rb + c));
        _mm512_mask_storeu_ps(o + c, m, x);
        s0 = _mm512_add_ps(s0, x);
    }
    if (rs)
        memcpy(rs, o, (size_t)C * sizeof *o);
    const float mu = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)C;
    const __m512 vm = _mm512_set1_ps(mu);
    __m512 v0 = _mm512_setzero_ps(), v1 = v0;
    for (c = 0; c + 32 <= C; c += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(o + c), vm), d1 = _mm512_sub_ps(_mm512_loadu_ps(o + c + 16), vm);
        v0 = _mm512_fmadd_ps(d0, d0, v0);
        v1 = _mm512_fmadd_ps(d1, d1, v1);
    }
    for (; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, o + c), vm);
        v0 = _mm512_fmadd_ps(d, d, v0);
    }
    const float r = 1.0f / sqrtf(_mm512_reduce_add_ps(_mm512_add_ps(v0, v1)) / (float)C + eps);
    const __m512 vr = _mm512_set1_ps(r);
    for (c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, o + c), vm), vr);
        _mm512_mask_storeu_ps(o + c, m, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, w + c), _mm512_maskz_loadu_ps(m, bias + c)));
    }
    if (mean)
        *mean = mu;
    if (rstd)
        *rstd = r;
}

void residual_layernorm_forward(float *y, float *s, float *mean, float *rstd, const float *a,
                                const float *b, const float *w, const float *bias, int N, int C,
                                float eps)
{
    if (nn_avx512()) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            residual_ln_row_avx512(y + (int64_t)i * C, s ? s + (int64_t)i * C : NULL, a + (int64_t)i * C,
                                   b + (int64_t)i * C, w, bias, C, eps, mean ? mean + i : NULL,
                                   rstd ? rstd + i : NULL);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *ra = a + (int64_t)i * C, *rb = b + (int64_t)i * C;
        float *o = y + (int64_t)i * C, *rs = s ? s + (int64_t)i * C : NULL;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++) {
            float x = ra[c] + rb[c];
            o[c] = x;
            sum += x;
        }
        if (rs)
            memcpy(rs, o, (size_t)C * sizeof *o);
        layernorm_row(o, o, sum, w, bias, C, eps, mean ? mean + i : NULL, rstd ? rstd + i : NULL);
    }
}

void residual_layernorm_backward(float *da, float *db, float *dw, float *dbias, float *ds,
                                 const float *dy, const float *s, const float *w,
                                 const float *mean, const float *rstd, int N, int C)
{
    memset(ds, 0, (size_t)N * C * sizeof *ds);
    layernorm_backward(ds, dw, dbias, dy, s, w, mean, rstd, N, C);
    residual_backward(da, db, ds, (int64_t)N * C);
}

/* ---- GELU ---------------------------------------------------------------------------- */

#define INV_SQRT_2PI 0.39894228040143267794f

AVX512 static void gelu_forward_avx512(float *y, const float *x, int64_t n)
{
    const erf_coefs e = erf_coefs_load();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) { /* two independent chains per step */
        __m512 v0 = gelu16(&e, _mm512_loadu_ps(x + i)), v1 = gelu16(&e, _mm512_loadu_ps(x + i + 16));
        _mm512_storeu_ps(y + i, v0);
        _mm512_storeu_ps(y + i + 16, v1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, gelu16(&e, _mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void gelu_forward_libm(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
}

/* ---- GELU on AVX2: the AVX-512 path's erf pieces and exp, 8 lanes ------------------ */

#define AVX2 __attribute__((target("avx2,fma")))

/* coefficient j of each lane's piece k (0..15): two 8-entry lookups */
AVX2 static inline __m256 piece_coef8(int j, __m256i k, __m256 upper)
{
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_load_ps(kit_erf_pieces[j]), k),
                            _mm256_permutevar8x32_ps(_mm256_load_ps(kit_erf_pieces[j] + 8), k), upper);
}

/* erf16_pieces' operations in the same order on 8 lanes: the same bits */
AVX2 static inline __m256 erf8_pieces(__m256 x)
{
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    __m256 sign = _mm256_and_ps(x, signbit), a = _mm256_andnot_ps(signbit, x);
    __m256 one = _mm256_cmp_ps(a, _mm256_set1_ps(4.0f), _CMP_GE_OQ);
    __m256 piece = _mm256_round_ps(_mm256_mul_ps(a, _mm256_set1_ps(4.0f)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    piece = _mm256_min_ps(piece, _mm256_set1_ps(15.0f));
    __m256i k = _mm256_cvttps_epi32(piece);
    __m256 upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, _mm256_set1_epi32(7)));
    __m256 t = _mm256_fnmadd_ps(piece, _mm256_set1_ps(0.25f), a); /* exact: a - piece / 4 */
    __m256 p = piece_coef8(0, k, upper);
    for (int j = 1; j < 6; j++)
        p = _mm256_fmadd_ps(p, t, piece_coef8(j, k, upper));
    p = _mm256_blendv_ps(p, _mm256_set1_ps(1.0f), one);
    return _mm256_or_ps(p, sign);
}

AVX2 static inline __m256 gelu8(__m256 v)
{
    __m256 r = erf8_pieces(_mm256_mul_ps(v, _mm256_set1_ps(INV_SQRT2)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), r));
}

AVX2 static void gelu_forward_avx2(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) { /* the last values through a padded vector */
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof *t);
        _mm256_storeu_ps(t, gelu8(_mm256_loadu_ps(t)));
        memcpy(y + i, t, (size_t)(n - i) * sizeof *t);
    }
}

/* the portable forward: AVX2 where there is, libm's erff otherwise */
static void gelu_forward_generic(float *y, const float *x, int64_t n)
{
    (nn_avx2() ? gelu_forward_avx2 : gelu_forward_libm)(y, x, n);
}

/* GELU'(v) = Phi(v) + v phi(v): erf by the forward's pieces, coefficients
 * in registers */
AVX512 static inline __m512 gelu_grad16(const erf_coefs *e, __m512 v)
{
    __m512 cdf = _mm512_mul_ps(_mm512_set1_ps(0.5f),
                               _mm512_add_ps(_mm512_set1_ps(1.0f),
                                             erf16_pieces(e, _mm512_mul_ps(v, _mm512_set1_ps(INV_SQRT2)))));
    __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(INV_SQRT_2PI),
                               exp16(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(v, v))));
    return _mm512_fmadd_ps(v, pdf, cdf);
}

/* dx += GELU'(x) dy, two independent chains per step */
AVX512 static void gelu_backward_avx512(float *dx, const float *x, const float *dy, int64_t n)
{
    const erf_coefs e = erf_coefs_load();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = gelu_grad16(&e, _mm512_loadu_ps(x + i)), d1 = gelu_grad16(&e, _mm512_loadu_ps(x + i + 16));
        _mm512_storeu_ps(dx + i, _mm512_fmadd_ps(d0, _mm512_loadu_ps(dy + i), _mm512_loadu_ps(dx + i)));
        _mm512_storeu_ps(dx + i + 16,
                         _mm512_fmadd_ps(d1, _mm512_loadu_ps(dy + i + 16), _mm512_loadu_ps(dx + i + 16)));
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = gelu_grad16(&e, _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(dx + i, m,
                              _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, dy + i), _mm512_maskz_loadu_ps(m, dx + i)));
    }
}

static void gelu_backward_libm(float *dx, const float *x, const float *dy, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x[i] * x[i]);
        dx[i] += (cdf + x[i] * pdf) * dy[i];
    }
}

/* exp16's operations on 8 lanes. vscalefps (p 2^n) is AVX-512 only: here
 * two exact powers of two, 2^(n>>1) then 2^(n - (n>>1)), each normal for n
 * in [-150, 128]; the first product is exact, the second rounds once, as
 * vscalefps does (denormal and infinite results included): the same bits. */
AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2[0]), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2[1]), r);
    __m256 p = _mm256_set1_ps(EXP_POLY[0]);
    for (int j = 1; j < 6; j++)
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_POLY[j]));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2); /* a NaN p passes, as from vscalefps */
}

/* gelu_grad16 on 8 lanes */
AVX2 static inline __m256 gelu_grad8(__m256 v)
{
    __m256 cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f),
                               _mm256_add_ps(_mm256_set1_ps(1.0f), erf8_pieces(_mm256_mul_ps(v, _mm256_set1_ps(INV_SQRT2)))));
    __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(INV_SQRT_2PI),
                               exp8(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(v, v))));
    return _mm256_fmadd_ps(v, pdf, cdf);
}

AVX2 static void gelu_backward_avx2(float *dx, const float *x, const float *dy, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(gelu_grad8(_mm256_loadu_ps(x + i)), _mm256_loadu_ps(dy + i),
                                                 _mm256_loadu_ps(dx + i)));
    if (i < n) { /* the last values through padded vectors */
        float tx[8] = {0}, ty[8] = {0}, td[8] = {0};
        memcpy(tx, x + i, (size_t)(n - i) * sizeof *tx);
        memcpy(ty, dy + i, (size_t)(n - i) * sizeof *ty);
        memcpy(td, dx + i, (size_t)(n - i) * sizeof *td);
        _mm256_storeu_ps(td, _mm256_fmadd_ps(gelu_grad8(_mm256_loadu_ps(tx)), _mm256_loadu_ps(ty), _mm256_loadu_ps(td)));
        memcpy(dx + i, td, (size_t)(n - i) * sizeof *td);
    }
}

/* the portable backward: AVX2 where there is, libm otherwise */
static void gelu_backward_generic(float *dx, const float *x, const float *dy, int64_t n)
{
    (nn_avx2() ? gelu_backward_avx2 : gelu_backward_libm)(dx, x, dy, n);
}

enum { CHUNK = 4096 }; /* elements per OpenMP work item of element-wise loops */

void gelu_row(float *y, const float *x, int64_t n)
{
    if (nn_avx512())
        gelu_forward_avx512(y, x, n);
    else
        gelu_forward_generic(y, x, n);
}

void gelu_forward(float *y, const float *x, int64_t n)
{
    int fast = nn_avx512();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        if (fast)
            gelu_forward_avx512(y + i, x + i, k);
        else
            gelu_forward_generic(y + i, x + i, k);
    }
}

void gelu_backward(float *dx, const float *x, const float *dy, int64_t n)
{
    int fast = nn_avx512();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        if (fast)
            gelu_backward_avx512(dx + i, x + i, dy + i, k);
        else
            gelu_backward_generic(dx + i, x + i, dy + i, k);
    }
}

/* ---- residual ------------------------------------------------------------------------ */

void residual_forward(float *y, const float *a, const float *b, int64_t n)
{
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dy, int64_t n)
{
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (da)
            da[i] += dy[i];
        if (db)
            db[i] += dy[i];
    }
}

/* ---- dropout -------------------------------------------------------------------------- */

/* splitmix64 finaliser of (seed, i): 32 well-mixed bits, no state */
static inline uint32_t drop_bits(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static inline uint32_t drop_threshold(float p) { return (uint32_t)((double)p * 4294967296.0); }

void dropout_forward(float *y, const float *x, int64_t n, float p, uint64_t seed)
{
    uint32_t thr = drop_threshold(p);
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = drop_bits(seed, (uint64_t)i) >= thr ? x[i] * scale : 0.0f;
}

void dropout_backward(float *dx, const float *dy, int64_t n, float p, uint64_t seed)
{
    uint32_t thr = drop_threshold(p);
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (drop_bits(seed, (uint64_t)i) >= thr)
            dx[i] += dy[i] * scale;
}

/* the seed of a keyed row or sequence: splitmix64 of (seed, key) */
static inline uint64_t drop_seed(uint64_t seed, uint64_t key)
{
    uint64_t z = seed ^ (key + 1) * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* drop_bits(s, c) >= thr for c = c0 .. c0+7, as a mask (64-bit lanes:
 * vpmullq needs AVX512DQ) */
__attribute__((target("avx512f,avx512dq"))) static inline __mmask8 keep8(uint64_t s, uint64_t c0,
                                                                       uint32_t thr)
{
    const __m512i step = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ull);
    __m512i i = _mm512_add_epi64(_mm512_set1_epi64((long long)(c0 + 1)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    __m512i z = _mm512_add_epi64(_mm512_set1_epi64((long long)s), _mm512_mullo_epi64(i, step));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    z = _mm512_srli_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 31)), 32);
    return _mm512_cmpge_epu64_mask(z, _mm512_set1_epi64(thr));
}

/* one row of dropout_rows, 16 values a step: the same bits as the loop */
__attribute__((target("avx512f,avx512dq"))) static void dropout_row_avx512(float *y, const float *x,
                                                                         int C, uint64_t s,
                                                                         uint32_t thr, float scale,
                                                                         int add)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __mmask16 keep = (__mmask16)(keep8(s, (uint64_t)c, thr) | (keep8(s, (uint64_t)c + 8, thr) << 8));
        __m512 v = _mm512_maskz_mul_ps(keep & m, _mm512_maskz_loadu_ps(m, x + c), vs);
        if (add)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, y + c));
        _mm512_mask_storeu_ps(y + c, m, v);
    }
}

static int have_avx512dq(void)
{
    static int dq = -1;
    if (dq < 0)
        dq = __builtin_cpu_supports("avx512dq") ? 1 : 0;
    return nn_avx512() && dq; /* nn_use_avx512(0) turns it off too */
}

/* keyed dropout of N rows of C into y (add: y +=, the backward) */
static void dropout_rows(float *y, const float *x, int64_t N, int C, float p, uint64_t seed,
                         const uint64_t *keys, int add)
{
    uint32_t thr = drop_threshold(p);
    float scale = 1.0f / (1.0f - p);
    const int fast = have_avx512dq();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        uint64_t s = drop_seed(seed, keys ? keys[i] : (uint64_t)i);
        const float *xi = x + i * C;
        float *yi = y + i * C;
        if (fast) {
            dropout_row_avx512(yi, xi, C, s, thr, scale, add);
            continue;
        }
        for (int c = 0; c < C; c++) {
            float v = drop_bits(s, (uint64_t)c) >= thr ? xi[c] * scale : 0.0f;
            yi[c] = add ? yi[c] + v : v;
        }
    }
}

void dropout_rows_forward(float *y, const float *x, int64_t N, int C, float p, uint64_t seed,
                          const uint64_t *keys)
{
    dropout_rows(y, x, N, C, p, seed, keys, 0);
}

void dropout_rows_backward(float *dx, const float *dy, int64_t N, int C, float p, uint64_t seed,
                           const uint64_t *keys)
{
    dropout_rows(dx, dy, N, C, p, seed, keys, 1);
}

/* ---- attention -------------------------------------------------------------------------- */

int64_t attention_probs_size(const int *off, int S, int NH, int64_t *poff)
{
    int64_t total = 0;
    for (int s = 0; s < S; s++) {
        int64_t n = off[s + 1] - off[s];
        if (poff)
            poff[s] = total;
        total += (int64_t)NH * n * n;
    }
    return total;
}

/* per thread: K^T (or V^T) of one head (hd x maxlen), 4 rows of scores
 * (8 in the backward: ds and pd), and 4 spare output rows (hd) */
int64_t attention_scratch(int maxlen, int C, int NH)
{
    return (int64_t)(C / NH) * (maxlen + 4) + 8 * (int64_t)maxlen + 32;
}

/* p[j] = exp(p[j] - max), returns the sum (the softmax without its
 * division, which the caller folds into what follows) */
AVX512 static float softmax_exp_avx512(float *p, int n, float max)
{
    __m512 vmax = _mm512_set1_ps(max), sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + j), vmax)));
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(p + j, m, e);
    }
    return _mm512_reduce_add_ps(sum);
}

static void softmax_row_generic(float *p, int n)
{
    float mx = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++)
        mx = p[j] > mx ? p[j] : mx;
    for (int j = 0; j < n; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++)
        p[j] *= inv;
}

/* row (n) = scale * q (hd) . kt (hd, n): scores of one query */
static void scores_generic(float *row, const float *q, const float *kt, int n, int hd, float scale)
{
    for (int j = 0; j < n; j++)
        row[j] = 0;
    for (int d = 0; d < hd; d++) {
        const float qd = q[d] * scale, *k = kt + (int64_t)d * n;
#pragma omp simd
        for (int j = 0; j < n; j++)
            row[j] += qd * k[j];
    }
}

#define INLINE_AVX512 __attribute__((target("avx512f"), always_inline)) static inline

/* acc[r][u] = q[r] . keys j0+16u .. j0+16u+15 (columns of kt (hd, n)),
 * m[u] the lanes inside n. U is a constant after inlining, so the 4 x U
 * accumulators live in registers. */
INLINE_AVX512 void scores4_acc(__m512 acc[4][4], __mmask16 m[4], const float *const q[4], const float *kt,
                               int n, int j0, int hd, int U)
{
    #pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
        m[u] = tail_mask(n - j0 - 16 * u);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[r][u] = _mm512_setzero_ps();
    }
    for (int d = 0; d < hd; d++) {
        __m512 k[4];
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++)
            k[u] = _mm512_maskz_loadu_ps(m[u], kt + (int64_t)d * n + j0 + 16 * u);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 qb = _mm512_set1_ps(q[r][d]);
            #pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[r][u] = _mm512_fmadd_ps(qb, k[u], acc[r][u]);
        }
    }
}

/* Scores of 4 queries (q[r], hd each) against keys j0 .. j0+16U of kt
 * (hd, n): out rows r at out + r*n. U is a constant after inlining, so
 * the 4 x U accumulators live in registers. */
INLINE_AVX512 void scores4_tile(float *out, const float *const q[4], const float *kt, int n,
                                int j0, int hd, float scale, int U, __m512 rmax[4])
{
    __m512 acc[4][4];
    __mmask16 m[4];
    scores4_acc(acc, m, q, kt, n, j0, hd, U);
    __m512 sc = _mm512_set1_ps(scale);
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            __m512 v = _mm512_mul_ps(acc[r][u], sc);
            rmax[r] = _mm512_mask_max_ps(rmax[r], m[u], rmax[r], v);
            _mm512_mask_storeu_ps(out + (int64_t)r * n + j0 + 16 * u, m[u], v);
        }
}

/* For n <= 64 (one tile): the scores of 4 queries, exponentiated in
 * registers: out[r] holds exp(score - row max), zeros past n, and sum[r]
 * their sum. Same operations, in the same order, as scores4_avx512
 * followed by softmax_exp_avx512, so the same bits, but the scores are
 * not stored and read back. */
INLINE_AVX512 void scores4_exp_tile(float out[4][64], const float *const q[4], const float *kt,
                                    int n, int hd, float scale, int U, float sum[4])
{
    __m512 acc[4][4];
    __mmask16 m[4];
    scores4_acc(acc, m, q, kt, n, 0, hd, U);
    __m512 sc = _mm512_set1_ps(scale);
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        __m512 rmax = _mm512_set1_ps(-INFINITY), s = _mm512_setzero_ps();
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            acc[r][u] = _mm512_mul_ps(acc[r][u], sc);
            rmax = _mm512_mask_max_ps(rmax, m[u], rmax, acc[r][u]);
        }
        __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(rmax));
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            __m512 e = _mm512_maskz_mov_ps(m[u], exp16(_mm512_sub_ps(acc[r][u], vmax)));
            s = _mm512_add_ps(s, e);
            _mm512_store_ps(out[r] + 16 * u, e); /* whole vectors: they forward to loads */
        }
        sum[r] = _mm512_reduce_add_ps(s);
    }
}

INLINE_AVX512 void scores4_exp(float out[4][64], const float *const q[4], const float *kt, int n,
                               int hd, float scale, float sum[4])
{
    switch ((n + 15) / 16) {
    case 1: scores4_exp_tile(out, q, kt, n, hd, scale, 1, sum); break;
    case 2: scores4_exp_tile(out, q, kt, n, hd, scale, 2, sum); break;
    case 3: scores4_exp_tile(out, q, kt, n, hd, scale, 3, sum); break;
    default: scores4_exp_tile(out, q, kt, n, hd, scale, 4, sum); break;
    }
}

AVX512 static void scores4_exp_avx512(float out[4][64], const float *const q[4], const float *kt,
                                      int n, int hd, float scale, float sum[4])
{
    scores4_exp(out, q, kt, n, hd, scale, sum);
}

/* scores of 4 queries against all n keys, and each row's maximum */
AVX512 static void scores4_avx512(float *out, const float *const q[4], const float *kt, int n,
                                  int hd, float scale, float max[4])
{
    __m512 rmax[4];
    for (int r = 0; r < 4; r++)
        rmax[r] = _mm512_set1_ps(-INFINITY);
    for (int j0 = 0; j0 < n; j0 += 64) {
        int vecs = (n - j0 + 15) / 16;
        switch (vecs > 4 ? 4 : vecs) {
        case 1: scores4_tile(out, q, kt, n, j0, hd, scale, 1, rmax); break;
        case 2: scores4_tile(out, q, kt, n, j0, hd, scale, 2, rmax); break;
        case 3: scores4_tile(out, q, kt, n, j0, hd, scale, 3, rmax); break;
        default: scores4_tile(out, q, kt, n, j0, hd, scale, 4, rmax); break;
        }
    }
    for (int r = 0; r < 4; r++)
        max[r] = _mm512_reduce_max_ps(rmax[r]);
}

/* o[r] (dims d0 .. d0+16U) = scale[r] sum_j p[r*ps + j] v_j, for 4 rows at
 * once (add: o[r] +=) */
INLINE_AVX512 void mix4_tile(float *const o[4], const float *p, int ps, const float *v,
                             int64_t stride, int n, int d0, int hd, int U, const float scale[4],
                             int add)
{
    __m512 acc[4][4];
    __mmask16 m[4];
    #pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
        m[u] = tail_mask(hd - d0 - 16 * u);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[r][u] = _mm512_setzero_ps();
    }
    for (int j = 0; j < n; j++) {
        __m512 vv[4];
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++)
            vv[u] = _mm512_maskz_loadu_ps(m[u], v + j * stride + d0 + 16 * u);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 pb = _mm512_set1_ps(p[(int64_t)r * ps + j]);
            #pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[r][u] = _mm512_fmadd_ps(pb, vv[u], acc[r][u]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int u = 0; u < U; u++)
            _mm512_mask_storeu_ps(o[r] + d0 + 16 * u, m[u],
                                  add ? _mm512_fmadd_ps(acc[r][u], _mm512_set1_ps(scale[r]),
                                                        _mm512_maskz_loadu_ps(m[u], o[r] + d0 + 16 * u))
                                      : _mm512_mul_ps(acc[r][u], _mm512_set1_ps(scale[r])));
}

/* o[r] = scale[r] * sum_j p[r*ps + j] v_j for 4 rows (add: o[r] +=) */
INLINE_AVX512 void mix4(float *const o[4], const float *p, int ps, const float *v, int64_t stride,
                        int n, int hd, const float scale[4], int add)
{
    for (int d0 = 0; d0 < hd; d0 += 64) {
        int vecs = (hd - d0 + 15) / 16;
        switch (vecs > 4 ? 4 : vecs) {
        case 1: mix4_tile(o, p, ps, v, stride, n, d0, hd, 1, scale, add); break;
        case 2: mix4_tile(o, p, ps, v, stride, n, d0, hd, 2, scale, add); break;
        case 3: mix4_tile(o, p, ps, v, stride, n, d0, hd, 3, scale, add); break;
        default: mix4_tile(o, p, ps, v, stride, n, d0, hd, 4, scale, add); break;
        }
    }
}

AVX512 static void mix4_avx512(float *const o[4], const float *p, int ps, const float *v,
                               int64_t stride, int n, int hd, const float scale[4])
{
    mix4(o, p, ps, v, stride, n, hd, scale, 0);
}

AVX512 static void mix4_add_avx512(float *const o[4], const float *p, int ps, const float *v,
                                   int64_t stride, int n, int hd, const float scale[4])
{
    mix4(o, p, ps, v, stride, n, hd, scale, 1);
}

/* Inference, n <= 64: o[r] = softmax(scale q[r] . K^T) V for 4 queries in
 * one function (3 % faster than its two calls in attention_forward_keyed) */
AVX512 static void attention4_avx512(float *const o[4], const float *const q[4], const float *kt,
                                     const float *v, int64_t stride, int n, int hd, float scale)
{
    float p[4][64] __attribute__((aligned(64))), sum[4], inv[4];
    scores4_exp(p, q, kt, n, hd, scale, sum);
    for (int r = 0; r < 4; r++)
        inv[r] = 1.0f / sum[r];
    mix4(o, p[0], 64, v, stride, n, hd, inv, 0);
}

/* o (hd) = sum_j p_j v_j, v_j at v + j*stride */
static void mix_generic(float *o, const float *p, const float *v, int64_t stride, int n, int hd)
{
    for (int d = 0; d < hd; d++)
        o[d] = 0;
    for (int j = 0; j < n; j++) {
        const float pj = p[j], *vj = v + j * stride;
#pragma omp simd
        for (int d = 0; d < hd; d++)
            o[d] += pj * vj[d];
    }
}

/* r[c] (16 rows x 16 columns) -> its transpose, in place: unpacks and
 * shuffles within 128-bit lanes, then lanes across registers */
AVX512 static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int k = 0; k < 16; k += 4) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);     /* per lane: r0[0] r1[0] r0[1] r1[1] */
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]); /*           r0[2] r1[2] r0[3] r1[3] */
        t[k + 2] = _mm512_unpacklo_ps(r[k + 2], r[k + 3]);
        t[k + 3] = _mm512_unpackhi_ps(r[k + 2], r[k + 3]);
        u[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44); /* column 0 of the lane, rows k .. k+3 */
        u[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xEE);
        u[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) { /* row 4 l + c of the result: lane l of u[c], u[4+c], u[8+c], u[12+c] */
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        __m512 y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        __m512 y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

/* kt (hd, n) = the transpose of the n keys k_j (hd floats at k + j*stride):
 * on AVX-512, blocks of 16 keys x 16 dimensions transposed in registers
 * (instead of one gather per dimension: its share of an int8 encode went
 * from 1.8 % to 1.1 %) */
AVX512 static void key_columns_avx512(float *kt, const float *k, int n, int hd, int stride)
{
    for (int j0 = 0; j0 < n; j0 += 16) {
        const __mmask16 jm = tail_mask(n - j0);
        for (int d0 = 0; d0 < hd; d0 += 16) {
            const __mmask16 dm = tail_mask(hd - d0);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = j0 + i < n ? _mm512_maskz_loadu_ps(dm, k + (int64_t)(j0 + i) * stride + d0)
                                  : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16 && d0 + c < hd; c++)
                _mm512_mask_storeu_ps(kt + (int64_t)(d0 + c) * n + j0, jm, r[c]);
        }
    }
}

static void key_columns(float *kt, const float *k, int n, int hd, int stride, int fast)
{
    if (fast) {
        key_columns_avx512(kt, k, n, hd, stride);
        return;
    }
    for (int j = 0; j < n; j++)
        for (int d = 0; d < hd; d++)
            kt[(int64_t)d * n + j] = k[(int64_t)j * stride + d];
}

/* ---- inference attention, 16 queries a vector ---------------------------------- */

/* sc[j0 + u] = scale q . k_{j0+u} for the KB <= 12 keys from j0 (rows stride
 * floats apart), each lane one query (qt[d][lane]); vmax = max(vmax, them) */
INLINE_AVX512 void scores16_keys(float sc[64][16], __m512 *vmax, const float qt[64][16], const float *k,
                                 int64_t stride, int j0, int hd, __m512 vs, int KB)
{
    __m512 acc[12];
    #pragma GCC unroll 12
    for (int u = 0; u < KB; u++)
        acc[u] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const __m512 qd = _mm512_load_ps(qt[d]);
        #pragma GCC unroll 12
        for (int u = 0; u < KB; u++)
            acc[u] = _mm512_fmadd_ps(_mm512_set1_ps(k[(j0 + u) * stride + d]), qd, acc[u]);
    }
    #pragma GCC unroll 12
    for (int u = 0; u < KB; u++) {
        const __m512 x = _mm512_mul_ps(acc[u], vs);
        *vmax = _mm512_max_ps(*vmax, x);
        _mm512_store_ps(sc[j0 + u], x);
    }
}

/* Sixteen queries (nq <= 16 of them) of one head of a sequence of n <= 64
 * keys, hd a multiple of 16 up to 64, each lane of a vector one query: no
 * transpose of K, no sum or maximum across lanes, one exp per (query,
 * key). In a bf16 encode of the SST-2 dev sentences (Zen 5, 2 threads)
 * attention took 0.51-0.56 s against attention4_avx512's 0.59-0.69 s,
 * timed around its calls in three alternating runs; 1.04-1.09 against
 * 1.21-1.24 us a head of 25 tokens in a loop, 0.35 against 0.43 at 12.
 * The operations of attention4_avx512, in the same order per
 * (query, key), so the same bits: scores from the FMA chain over d,
 * times scale; exp(score - row max); the row sum as _mm512_reduce_add_ps
 * adds scores4_exp_tile's lanes (key j into lane j mod 16, then halves
 * 8, 4, 2, 1); outputs from the FMA chain over the keys, times 1/sum.
 * q, k, v: the head's first query, key and value (rows stride floats
 * apart); o: the first query's output (rows ostride apart). */
AVX512 static void attention16_avx512(float *o, int64_t ostride, const float *q, const float *k,
                                      const float *v, int64_t stride, int n, int nq, int hd,
                                      float scale)
{
    float qt[64][16] __attribute__((aligned(64))); /* qt[d][lane] = q[lane][d] */
    float sc[64][16] __attribute__((aligned(64))); /* scores, then exps: [key][lane] */
    for (int d0 = 0; d0 < hd; d0 += 16) {
        __m512 r[16];
        #pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            r[i] = i < nq ? _mm512_loadu_ps(q + i * stride + d0) : _mm512_setzero_ps();
        transpose16(r);
        #pragma GCC unroll 16
        for (int c = 0; c < 16; c++)
            _mm512_store_ps(qt[d0 + c], r[c]);
    }
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    const __m512 vs = _mm512_set1_ps(scale);
    /* keys in groups of at most 12, of equal size give or take one: a
     * group's chains of FMAs over d run side by side, and it takes 8 to
     * keep both FMA units busy (groups of 8 and a remainder were slower) */
    const int groups = (n + 11) / 12;
    for (int g = 0, j0 = 0; g < groups; g++) {
        const int kb = n * (g + 1) / groups - j0;
        switch (kb) {
#define KEYS(c) case c: scores16_keys(sc, &vmax, qt, k, stride, j0, hd, vs, c); break;
        KEYS(1) KEYS(2) KEYS(3) KEYS(4) KEYS(5) KEYS(6) KEYS(7) KEYS(8) KEYS(9) KEYS(10) KEYS(11) KEYS(12)
#undef KEYS
        }
        j0 += kb;
    }
    /* exps, and the row sums in reduce_add's order */
    __m512 part[16];
    #pragma GCC unroll 16
    for (int l = 0; l < 16; l++)
        part[l] = _mm512_setzero_ps();
    for (int j0 = 0; j0 < n; j0 += 16)
        #pragma GCC unroll 16
        for (int l = 0; l < 16; l++)
            if (j0 + l < n) {
                const __m512 e = exp16(_mm512_sub_ps(_mm512_load_ps(sc[j0 + l]), vmax));
                _mm512_store_ps(sc[j0 + l], e);
                part[l] = _mm512_add_ps(part[l], e);
            }
    #pragma GCC unroll 8
    for (int l = 0; l < 8; l++)
        part[l] = _mm512_add_ps(part[l + 8], part[l]);
    #pragma GCC unroll 4
    for (int l = 0; l < 4; l++)
        part[l] = _mm512_add_ps(part[l + 4], part[l]);
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(part[0], part[2]), _mm512_add_ps(part[1], part[3]));
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
    /* outputs, 16 dimensions at a time, transposed back to rows */
    for (int d0 = 0; d0 < hd; d0 += 16) {
        __m512 acc[16];
        #pragma GCC unroll 16
        for (int c = 0; c < 16; c++)
            acc[c] = _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const __m512 pj = _mm512_load_ps(sc[j]);
            const float *vj = v + (int64_t)j * stride + d0;
            #pragma GCC unroll 16
            for (int c = 0; c < 16; c++)
                acc[c] = _mm512_fmadd_ps(pj, _mm512_set1_ps(vj[c]), acc[c]);
        }
        #pragma GCC unroll 16
        for (int c = 0; c < 16; c++)
            acc[c] = _mm512_mul_ps(acc[c], inv);
        transpose16(acc);
        for (int i = 0; i < nq; i++)
            _mm512_storeu_ps(o + i * ostride + d0, acc[i]);
    }
}

/* Training: the probabilities of one query kept (pr = row inv), and the
 * row (unnormalised, before the mix) dropped out in place with the mask of
 * indices first .. first+n-1: the scalar loops' bits, 16 at a time */
__attribute__((target("avx512f,avx512dq"))) static void
keep_probs_avx512(float *pr, float *row, int n, float inv, float p_drop, uint64_t seed, uint64_t first)
{
    const uint32_t thr = drop_threshold(p_drop);
    const __m512 vi = _mm512_set1_ps(inv), ks = _mm512_set1_ps(1.0f / (1.0f - p_drop));
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 x = _mm512_maskz_loadu_ps(m, row + j);
        _mm512_mask_storeu_ps(pr + j, m, _mm512_mul_ps(x, vi));
        if (p_drop > 0) {
            __mmask16 keep = (__mmask16)(keep8(seed, first + (uint64_t)j, thr) |
                                         keep8(seed, first + (uint64_t)j + 8, thr) << 8);
            _mm512_mask_storeu_ps(row + j, m, _mm512_maskz_mul_ps(keep, x, ks));
        }
    }
}

/* Inference: a last block of at most SMALL_BLOCK queries goes through
 * attention4_avx512 (the same bits) instead of a 16-lane block mostly
 * empty. Heads of 32, one thread, 16 sequences a call, alternating in one
 * process (Zen 5): 6-13 % less time at lengths 17-20, 34-36 and 50-52,
 * 9-12 % at 2-4; a limit of 8 was 0-4 % faster at 22-24 tokens but
 * 15-22 % slower at 5-8, where it also transposes K. */
enum { SMALL_BLOCK = 4 };

/* Pairs (sequence, head) under a dynamic schedule: the work of a pair
 * grows with n^2. */
void attention_forward(float *out, float *probs, const float *qkv, const int *off,
                       const int64_t *poff, int S, int C, int NH, float p_drop, uint64_t seed,
                       float *scratch)
{
    attention_forward_keyed(out, probs, qkv, off, poff, S, C, NH, p_drop, seed, NULL, scratch);
}

/* Unkeyed, the dropout index of a probability is its place in probs;
 * keyed, its place in its sequence's block, under the sequence's seed. */
void attention_forward_keyed(float *out, float *probs, const float *qkv, const int *off,
                             const int64_t *poff, int S, int C, int NH, float p_drop,
                             uint64_t seed, const uint64_t *keys, float *scratch)
{
    const int hd = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    int maxlen = 0;
    for (int s = 0; s < S; s++)
        maxlen = off[s + 1] - off[s] > maxlen ? off[s + 1] - off[s] : maxlen;
    const int64_t per = attention_scratch(maxlen, C, NH);
    const int fast = nn_avx512(), dq = have_avx512dq();
    const uint32_t thr = drop_threshold(p_drop);
    const float keep_scale = 1.0f / (1.0f - p_drop);
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < S * NH; task++) {
        int s = task / NH, h = task % NH, n = off[s + 1] - off[s];
        const float *base = qkv + (int64_t)off[s] * C3;
        const uint64_t sd = keys ? drop_seed(seed, keys[s]) : seed; /* this sequence's dropout seed */
        float *kt = scratch + per * omp_get_thread_num(), *rows = kt + (int64_t)hd * n;
        float *spare = rows + 4 * (int64_t)n; /* outputs of repeated rows */
        int first4 = 0; /* the queries from first4 on go 4 at a time */
        if (fast && n <= 64 && !probs && hd % 16 == 0 && hd <= 64) {
            for (; first4 < n; first4 += 16) {
                const int nq = n - first4 < 16 ? n - first4 : 16;
                if (nq <= SMALL_BLOCK)
                    break;
                attention16_avx512(out + ((int64_t)off[s] + first4) * C + h * hd, C,
                                   base + (int64_t)first4 * C3 + h * hd, base + C + h * hd,
                                   base + 2 * C + h * hd, C3, n, nq, hd, scale);
            }
            if (first4 >= n)
                continue;
        }
        key_columns(kt, base + C + h * hd, n, hd, C3, fast); /* K^T of this head: (hd, n) */
        for (int i0 = first4; i0 < n; i0 += 4) {
            /* queries i0 .. i0+3 (the last block repeats its last row) */
            const int nr = n - i0 < 4 ? n - i0 : 4;
            const float *q[4];
            float *o[4];
            for (int r = 0; r < 4; r++) {
                int i = i0 + (r < nr ? r : nr - 1);
                q[r] = base + (int64_t)i * C3 + h * hd;
                o[r] = r < nr ? out + ((int64_t)off[s] + i) * C + h * hd : spare + r * hd;
            }
            const float *v = base + 2 * C + h * hd;
            if (fast && n <= 64 && !probs) {
                attention4_avx512(o, q, kt, v, C3, n, hd, scale);
                continue;
            }
            /* unnormalised probabilities in p (rows of ps floats), 1/sum
             * in inv: the division happens once per output, in the mix.
             * Up to 64 keys they stay in a 64-byte-aligned buffer on the
             * stack, written by whole vectors: the masked stores of a row
             * of n do not forward to the loads that follow, which stall. */
            float mx[4], sum[4], inv[4] = {1, 1, 1, 1};
            float pbuf[4][64] __attribute__((aligned(64)));
            const int fused = fast && n <= 64, ps = fused ? 64 : n;
            float *p = fused ? pbuf[0] : rows;
            if (fused)
                scores4_exp_avx512(pbuf, q, kt, n, hd, scale, sum);
            else if (fast)
                scores4_avx512(rows, q, kt, n, hd, scale, mx);
            for (int r = 0; r < nr; r++) {
                float *row = p + (int64_t)r * ps;
                if (fused) {
                    inv[r] = 1.0f / sum[r];
                } else if (fast) {
                    inv[r] = 1.0f / softmax_exp_avx512(row, n, mx[r]);
                } else {
                    scores_generic(row, q[r], kt, n, hd, scale);
                    softmax_row_generic(row, n);
                }
                if (probs) {
                    float *pr = probs + poff[s] + ((int64_t)h * n + i0 + r) * n;
                    uint64_t first = (uint64_t)(pr - (keys ? probs + poff[s] : probs));
                    if (dq) {
                        keep_probs_avx512(pr, row, n, inv[r], p_drop, sd, first);
                        continue;
                    }
                    for (int j = 0; j < n; j++)
                        pr[j] = row[j] * inv[r];
                    if (p_drop > 0)
                        for (int j = 0; j < n; j++)
                            row[j] = drop_bits(sd, first + (uint64_t)j) >= thr ? row[j] * keep_scale : 0;
                }
            }
            if (fast)
                mix4_avx512(o, p, ps, v, C3, n, hd, inv);
            else
                for (int r = 0; r < nr; r++)
                    mix_generic(o[r], rows + (int64_t)r * n, v, C3, n, hd);
        }
    }
}

/* Gradients of one (sequence, head): rows of dq, dk, dv at dbase, in
 * plain C, one query at a time (the AVX-512 version below takes 4) */
static void attention_backward_task_generic(float *dbase, const float *base,
                                            const float *dout_rows, const float *probs,
                                            int64_t pfirst, int n, int h, int C, int hd,
                                            float scale, float p_drop, uint64_t seed, float *dp,
                                            float *pd)
{
    const int C3 = 3 * C;
    const uint32_t thr = drop_threshold(p_drop);
    const float keep_scale = 1.0f / (1.0f - p_drop);
    for (int i = 0; i < n; i++) {
        const float *p = probs + pfirst + ((int64_t)h * n + i) * n;
        const float *g = dout_rows + (int64_t)i * C + h * hd;
        const uint64_t first = (uint64_t)(pfirst + ((int64_t)h * n + i) * n);
        /* pd: probabilities after dropout; dp: d loss / d probs */
        for (int j = 0; j < n; j++) {
            float keep = p_drop > 0 ? (drop_bits(seed, first + (uint64_t)j) >= thr ? keep_scale : 0) : 1;
            const float *v = base + (int64_t)j * C3 + 2 * C + h * hd;
            float *dv = dbase + (int64_t)j * C3 + 2 * C + h * hd, dot = 0;
            pd[j] = p[j] * keep;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < hd; d++) {
                dv[d] += pd[j] * g[d];
                dot += g[d] * v[d];
            }
            dp[j] = dot * keep;
        }
        float pdp = 0; /* sum_j p_j dp_j */
        for (int j = 0; j < n; j++)
            pdp += p[j] * dp[j];
        const float *q = base + (int64_t)i * C3 + h * hd;
        float *dq = dbase + (int64_t)i * C3 + h * hd;
        for (int j = 0; j < n; j++) {
            float ds = p[j] * (dp[j] - pdp) * scale;
            const float *k = base + (int64_t)j * C3 + C + h * hd;
            float *dk = dbase + (int64_t)j * C3 + C + h * hd;
#pragma omp simd
            for (int d = 0; d < hd; d++) {
                dq[d] += ds * k[d];
                dk[d] += ds * q[d];
            }
        }
    }
}

/* ---- attention backward, AVX-512: blocks of 4 queries ---------------------------------- */

/* y_j (dims d0 .. d0+16U, rows at y + j*stride) += sum_r w[r*ws + j] x[r]
 * for j < n, and the same for a second triple: the 4 x rows of each stay
 * in registers (U <= 2) while the n rows of y are read and written once */
INLINE_AVX512 void spread4x2_tile(float *y1, const float *w1, const float *const x1[4], float *y2,
                                  const float *w2, const float *const x2[4], int64_t stride,
                                  int ws, int n, int d0, int hd, int U)
{
    __m512 a[4][2], b[4][2];
    __mmask16 m[2];
    #pragma GCC unroll 2
    for (int u = 0; u < U; u++) {
        m[u] = tail_mask(hd - d0 - 16 * u);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            a[r][u] = _mm512_maskz_loadu_ps(m[u], x1[r] + d0 + 16 * u);
            b[r][u] = _mm512_maskz_loadu_ps(m[u], x2[r] + d0 + 16 * u);
        }
    }
    for (int j = 0; j < n; j++) {
        float *p1 = y1 + j * stride + d0, *p2 = y2 + j * stride + d0;
        __m512 s1[2], s2[2];
        #pragma GCC unroll 2
        for (int u = 0; u < U; u++) {
            s1[u] = _mm512_maskz_loadu_ps(m[u], p1 + 16 * u);
            s2[u] = _mm512_maskz_loadu_ps(m[u], p2 + 16 * u);
        }
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 c1 = _mm512_set1_ps(w1[r * ws + j]), c2 = _mm512_set1_ps(w2[r * ws + j]);
            #pragma GCC unroll 2
            for (int u = 0; u < U; u++) {
                s1[u] = _mm512_fmadd_ps(c1, a[r][u], s1[u]);
                s2[u] = _mm512_fmadd_ps(c2, b[r][u], s2[u]);
            }
        }
        #pragma GCC unroll 2
        for (int u = 0; u < U; u++) {
            _mm512_mask_storeu_ps(p1 + 16 * u, m[u], s1[u]);
            _mm512_mask_storeu_ps(p2 + 16 * u, m[u], s2[u]);
        }
    }
}

/* From the 4 rows of dp = dout . V^T (in ds, unscaled) and the kept
 * probabilities p: pd = p after dropout, ds = p (dp keep - sum_j p dp keep)
 * scale, rows past nr zero. keep recomputes the forward's dropout mask. */
__attribute__((target("avx512f,avx512dq"))) static void
attention_dsoftmax4(float *ds, float *pd, const float *probs, int64_t pfirst, int n, int h,
                    int i0, int nr, float scale, float p_drop, uint64_t seed)
{
    const uint32_t thr = drop_threshold(p_drop);
    const __m512 ks = _mm512_set1_ps(1.0f / (1.0f - p_drop)), sc = _mm512_set1_ps(scale);
    for (int r = 0; r < 4; r++) {
        float *dsr = ds + (int64_t)r * n, *pdr = pd + (int64_t)r * n;
        if (r >= nr) {
            memset(dsr, 0, (size_t)n * sizeof *dsr);
            memset(pdr, 0, (size_t)n * sizeof *pdr);
            continue;
        }
        const int64_t first = pfirst + ((int64_t)h * n + i0 + r) * n;
        const float *p = probs + first;
        __m512 acc = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = tail_mask(n - j);
            __m512 pv = _mm512_maskz_loadu_ps(m, p + j), dp = _mm512_maskz_loadu_ps(m, dsr + j);
            if (p_drop > 0) {
                __mmask16 keep = (__mmask16)(keep8(seed, (uint64_t)(first + j), thr) |
                                             keep8(seed, (uint64_t)(first + j) + 8, thr) << 8);
                dp = _mm512_maskz_mul_ps(keep, dp, ks);
                _mm512_mask_storeu_ps(pdr + j, m, _mm512_maskz_mul_ps(keep, pv, ks));
                _mm512_mask_storeu_ps(dsr + j, m, dp);
            } else {
                _mm512_mask_storeu_ps(pdr + j, m, pv);
            }
            acc = _mm512_fmadd_ps(pv, dp, acc);
        }
        const __m512 pdp = _mm512_set1_ps(_mm512_reduce_add_ps(acc));
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = tail_mask(n - j);
            __m512 pv = _mm512_maskz_loadu_ps(m, p + j), dp = _mm512_maskz_loadu_ps(m, dsr + j);
            _mm512_mask_storeu_ps(dsr + j, m, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(dp, pdp)), sc));
        }
    }
}

/* Gradients of one (sequence, head), 4 queries at a time: dp rows as
 * scores of dout against V^T, the softmax's backward on them, then dq by
 * a mix of the keys and dk, dv spread over the keys' rows. scr: V^T (hd,
 * n), 4 rows of ds and of pd (n each), 4 spare rows (hd). */
__attribute__((target("avx512f,avx512dq"))) static void
attention_backward_task_avx512(float *dbase, const float *base, const float *dout_rows,
                               const float *probs, int64_t pfirst, int n, int h, int C, int hd,
                               float scale, float p_drop, uint64_t seed, float *scr)
{
    const int C3 = 3 * C;
    float *vt = scr, *ds = vt + (int64_t)hd * n, *pd = ds + 4 * (int64_t)n, *spare = pd + 4 * (int64_t)n;
    const float one[4] = {1, 1, 1, 1};
    float mx[4];
    memset(spare, 0, 4 * (size_t)hd * sizeof *spare); /* dq of repeated rows: read, then dropped */
    key_columns_avx512(vt, base + 2 * C + h * hd, n, hd, C3); /* V^T of this head */
    for (int i0 = 0; i0 < n; i0 += 4) {
        const int nr = n - i0 < 4 ? n - i0 : 4;
        const float *g[4], *q[4];
        float *dq[4];
        for (int r = 0; r < 4; r++) {
            int i = i0 + (r < nr ? r : nr - 1);
            g[r] = dout_rows + (int64_t)i * C + h * hd;
            q[r] = base + (int64_t)i * C3 + h * hd;
            dq[r] = r < nr ? dbase + (int64_t)i * C3 + h * hd : spare + r * hd;
        }
        scores4_avx512(ds, g, vt, n, hd, 1.0f, mx); /* dp = dout . v_j */
        attention_dsoftmax4(ds, pd, probs, pfirst, n, h, i0, nr, scale, p_drop, seed);
        mix4_add_avx512(dq, ds, n, base + C + h * hd, C3, n, hd, one); /* dq += ds K */
        for (int d0 = 0; d0 < hd; d0 += 32) /* dk_j += sum_r ds[r][j] q_r, dv_j += pd[r][j] g_r */
            if (hd - d0 > 16)
                spread4x2_tile(dbase + C + h * hd, ds, q, dbase + 2 * C + h * hd, pd, g, C3, n, n, d0, hd, 2);
            else
                spread4x2_tile(dbase + C + h * hd, ds, q, dbase + 2 * C + h * hd, pd, g, C3, n, n, d0, hd, 1);
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs,
                        const int *off, const int64_t *poff, int S, int C, int NH,
                        float p_drop, uint64_t seed, float *scratch)
{
    attention_backward_keyed(dqkv, dout, qkv, probs, off, poff, S, C, NH, p_drop, seed, NULL,
                             scratch);
}

/* keyed: each sequence's task sees its own block of probs (index from 0)
 * and its own seed */
void attention_backward_keyed(float *dqkv, const float *dout, const float *qkv,
                              const float *probs, const int *off, const int64_t *poff, int S,
                              int C, int NH, float p_drop, uint64_t seed, const uint64_t *keys,
                              float *scratch)
{
    const int hd = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    int maxlen = 0;
    for (int s = 0; s < S; s++)
        maxlen = off[s + 1] - off[s] > maxlen ? off[s + 1] - off[s] : maxlen;
    const int64_t per = attention_scratch(maxlen, C, NH);
    const int fast = have_avx512dq();
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < S * NH; task++) {
        int s = task / NH, h = task % NH, n = off[s + 1] - off[s];
        float *scr = scratch + per * omp_get_thread_num();
        float *dbase = dqkv + (int64_t)off[s] * C3;
        const float *base = qkv + (int64_t)off[s] * C3, *g = dout + (int64_t)off[s] * C;
        const float *pr = keys ? probs + poff[s] : probs;
        const int64_t pfirst = keys ? 0 : poff[s];
        const uint64_t sd = keys ? drop_seed(seed, keys[s]) : seed;
        if (fast)
            attention_backward_task_avx512(dbase, base, g, pr, pfirst, n, h, C, hd, scale, p_drop, sd, scr);
        else
            attention_backward_task_generic(dbase, base, g, pr, pfirst, n, h, C, hd, scale, p_drop, sd,
                                            scr, scr + maxlen);
    }
}
