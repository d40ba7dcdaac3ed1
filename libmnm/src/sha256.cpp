#include "sha256.hpp"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define MNM_SHA_NI 1
#endif

namespace mnm {
namespace {

constexpr uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void blocks_portable(uint32_t *state, const uint8_t *chunk, size_t count)
{
    for (; count > 0; --count, chunk += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = uint32_t(chunk[4 * i]) << 24 | uint32_t(chunk[4 * i + 1]) << 16 | uint32_t(chunk[4 * i + 2]) << 8 |
                   uint32_t(chunk[4 * i + 3]);
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
        }
        state[0] += a, state[1] += b, state[2] += c, state[3] += d;
        state[4] += e, state[5] += f, state[6] += g, state[7] += h;
    }
}

#ifdef MNM_SHA_NI
// The x86 SHA extensions (SHA-NI), about ten times the portable code: a bundle's files are hashed
// at the speed Python's hashlib (OpenSSL) reaches. Message words in groups of four, G0..G15:
// G(k+4) = msg2(msg1(Gk, Gk+1) + (Gk+3:Gk+2 >> 32 bits), Gk+3); two rounds per rnds2.
__attribute__((target("sha,sse4.1"))) void blocks_sha_ni(uint32_t *state, const uint8_t *data, size_t count)
{
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL); // big-endian words
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(state)), 0xB1); // CDAB
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(state + 4)), 0x1B); // EFGH
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);    // ABEF
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);         // CDGH
    for (; count > 0; --count, data += 64) {
        __m128i abef = state0, cdgh = state1, g[4];
#pragma GCC unroll 16
        for (int k = 0; k < 16; ++k) {
            if (k < 4) {
                g[k] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i *>(data + 16 * k)), swap);
            } else {
                __m128i next = _mm_sha256msg1_epu32(g[k % 4], g[(k + 1) % 4]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(g[(k + 3) % 4], g[(k + 2) % 4], 4));
                g[k % 4] = _mm_sha256msg2_epu32(next, g[(k + 3) % 4]);
            }
            __m128i words = _mm_add_epi32(g[k % 4], _mm_loadu_si128(reinterpret_cast<const __m128i *>(K + 4 * k)));
            state1 = _mm_sha256rnds2_epu32(state1, state0, words);
            state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(words, 0x0E));
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);     // FEBA
    state1 = _mm_shuffle_epi32(state1, 0xB1);  // DCHG
    state0 = _mm_blend_epi16(tmp, state1, 0xF0); // DCBA
    state1 = _mm_alignr_epi8(state1, tmp, 8);  // ABEF -> HGFE
    _mm_storeu_si128(reinterpret_cast<__m128i *>(state), state0);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(state + 4), state1);
}

bool has_sha_ni()
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) // SHA
        return false;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9)); // SSE4.1, SSSE3
}
#endif

} // namespace

Sha256::Sha256()
    : state_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
{
}

void Sha256::blocks(const uint8_t *data, size_t count)
{
#ifdef MNM_SHA_NI
    static const bool fast = has_sha_ni();
    if (fast)
        return blocks_sha_ni(state_.data(), data, count);
#endif
    blocks_portable(state_.data(), data, count);
}

void Sha256::update(const void *data, size_t size)
{
    const uint8_t *bytes = static_cast<const uint8_t *>(data);
    length_ += size;
    if (buffered_ > 0) {
        size_t take = std::min(size, 64 - buffered_);
        std::memcpy(buffer_.data() + buffered_, bytes, take);
        buffered_ += take, bytes += take, size -= take;
        if (buffered_ < 64)
            return;
        blocks(buffer_.data(), 1);
        buffered_ = 0;
    }
    blocks(bytes, size / 64);
    bytes += size / 64 * 64;
    size %= 64;
    std::memcpy(buffer_.data(), bytes, size);
    buffered_ = size;
}

std::array<uint8_t, 32> Sha256::digest()
{
    uint64_t bits = length_ * 8;
    uint8_t pad[72] = {0x80};
    size_t pad_size = (buffered_ < 56 ? 56 : 120) - buffered_;
    for (int i = 0; i < 8; ++i)
        pad[pad_size + i] = uint8_t(bits >> (56 - 8 * i));
    update(pad, pad_size + 8);
    std::array<uint8_t, 32> out{};
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j)
            out[4 * i + j] = uint8_t(state_[i] >> (24 - 8 * j));
    return out;
}

std::string Sha256::hex()
{
    static const char digits[] = "0123456789abcdef";
    std::string text;
    for (uint8_t byte : digest()) {
        text += digits[byte >> 4];
        text += digits[byte & 15];
    }
    return text;
}

std::string sha256_hex(const void *data, size_t size)
{
    Sha256 hash;
    hash.update(data, size);
    return hash.hex();
}

} // namespace mnm
