// Uniform sampling for key generation. A key-switching key's uniform half is most of keygen's random
// bits (4 GB at default-128); OpenFHE draws them 32 bits at a time from a BLAKE2 generator behind a
// thread-local lookup and a std::uniform_int_distribution, which was half of keygen's time. ChaCha20
// (RFC 8439) keyed from the operating system's entropy is a standard cryptographic generator; in profiles
// of the stage keys' generation it took a fifth of the time where BLAKE2 and its lookups took half (keygen
// 50.3 -> 38.9 s at default-128). Written with GCC/Clang vector extensions (SSE2, AVX2 or NEON).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "openfhe.h"

namespace resnet_fhe {

// The ChaCha20 keystream of a 256-bit key and 96-bit nonce from a 32-bit block counter, in RFC 8439's
// byte order, eight blocks at a time.
class ChaCha20Stream {
public:
    static constexpr size_t kBlocks = 8;

    ChaCha20Stream(const std::array<uint32_t, 8>& key, const std::array<uint32_t, 3>& nonce, uint32_t counter);

    // A stream under a fresh key from the operating system (getentropy), nonce zero.
    static ChaCha20Stream FromEntropy();

    uint32_t NextWord() {
        if (position_ == buffer_.size())
            Refill();
        return buffer_[position_++];
    }

    uint64_t Next64() {
        const uint64_t low = NextWord();
        return low | (static_cast<uint64_t>(NextWord()) << 32);
    }

private:
    void Refill();

    std::array<uint32_t, 16> state_;  // constants, key, counter, nonce: the next block's input
    std::array<uint32_t, 16 * kBlocks> buffer_;
    size_t position_;
};

// A residue uniform modulo `modulus` (below 2^64): 64 stream bits cut to the modulus' bit length, drawn
// again while they are not below it (at most two tries on average).
inline uint64_t UniformResidue(uint64_t modulus, ChaCha20Stream& stream) {
    const int bits = 64 - __builtin_clzll(modulus);
    const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    while (true) {
        const uint64_t x = stream.Next64() & mask;
        if (x < modulus)
            return x;
    }
}

// A polynomial over `basis` whose coefficients are uniform modulo each tower's modulus (rejection sampling
// as UniformResidue), in evaluation form: a uniform polynomial's transform is uniform too.
lbcrypto::DCRTPoly UniformPolynomial(const std::shared_ptr<lbcrypto::DCRTPoly::Params>& basis,
                                     ChaCha20Stream& stream);

}  // namespace resnet_fhe
