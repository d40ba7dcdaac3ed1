// The library's own random numbers for "random" and "seed:N" factors. numpy's generator (PCG64
// with its ziggurat normals) is not reproduced: the distributions are the same (categories
// uniform, z standard normal), the samples are not the Python runtime's. The same seed gives the
// same samples in every process and on every machine (xoshiro256** seeded by splitmix64, normals
// by the Box-Muller transform, all in integer and IEEE double arithmetic).
#ifndef MNM_SRC_RANDOM_HPP
#define MNM_SRC_RANDOM_HPP

#include <cmath>
#include <cstdint>

namespace mnm {

class Random {
public:
    explicit Random(uint64_t seed)
    {
        for (uint64_t &word : state_) { // splitmix64
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            word = z ^ (z >> 31);
        }
    }

    uint64_t next()
    {
        uint64_t result = rotl(state_[1] * 5, 7) * 9, t = state_[1] << 17;
        state_[2] ^= state_[0], state_[3] ^= state_[1], state_[1] ^= state_[2], state_[0] ^= state_[3];
        state_[2] ^= t, state_[3] = rotl(state_[3], 45);
        return result;
    }

    // Uniform in [0, n), without modulo bias.
    uint64_t below(uint64_t n)
    {
        uint64_t limit = -n % n; // 2^64 mod n
        for (;;) {
            uint64_t x = next();
            if (x >= limit)
                return x % n;
        }
    }

    // Uniform in (0, 1): 53 random bits, never 0.
    double open_unit() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

    double normal()
    {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double radius = std::sqrt(-2.0 * std::log(open_unit())), angle = 6.283185307179586 * open_unit();
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t state_[4];
    double spare_ = 0;
    bool has_spare_ = false;
};

} // namespace mnm

#endif
