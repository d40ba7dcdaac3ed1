// SHA-256 (FIPS 180-4): bundle files are checked against their manifest digests, and prepared
// references are cache-keyed by the digest of their pixels, as the Python runtime does.
#ifndef MNM_SRC_SHA256_HPP
#define MNM_SRC_SHA256_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mnm {

class Sha256 {
public:
    Sha256();
    void update(const void *data, size_t size);
    std::array<uint8_t, 32> digest();        // ends the hash
    std::string hex();                       // ends the hash: 64 lowercase hex digits

private:
    void blocks(const uint8_t *data, size_t count); // count whole 64-byte blocks
    std::array<uint32_t, 8> state_;
    std::array<uint8_t, 64> buffer_{};
    size_t buffered_ = 0;
    uint64_t length_ = 0; // bytes hashed so far
};

// The hex digest of `size` bytes.
std::string sha256_hex(const void *data, size_t size);

} // namespace mnm

#endif
