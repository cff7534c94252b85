#include "key_sampling.h"

#include <stdexcept>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#endif

namespace resnet_fhe {

using namespace lbcrypto;

namespace {

// One 32-bit word of each of the eight blocks computed side by side.
typedef uint32_t Lanes __attribute__((vector_size(4 * ChaCha20Stream::kBlocks)));

// In place (a by-value vector of 32 bytes would change the calling convention without AVX).
template <int bits>
inline void rotate_left(Lanes& x) {
    x = (x << bits) | (x >> (32 - bits));
}

inline void quarter_round(Lanes& a, Lanes& b, Lanes& c, Lanes& d) {
    a += b; d ^= a; rotate_left<16>(d);
    c += d; b ^= c; rotate_left<12>(b);
    a += b; d ^= a; rotate_left<8>(d);
    c += d; b ^= c; rotate_left<7>(b);
}

}  // namespace

ChaCha20Stream::ChaCha20Stream(const std::array<uint32_t, 8>& key, const std::array<uint32_t, 3>& nonce,
                               uint32_t counter)
    : state_{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574}, buffer_{}, position_(buffer_.size()) {
    for (int i = 0; i < 8; ++i)
        state_[4 + i] = key[i];
    state_[12] = counter;
    for (int i = 0; i < 3; ++i)
        state_[13 + i] = nonce[i];
}

ChaCha20Stream ChaCha20Stream::FromEntropy() {
    std::array<uint32_t, 8> key;
    if (getentropy(key.data(), sizeof(key)) != 0)
        throw std::runtime_error("ChaCha20Stream: the operating system gave no entropy (getentropy failed)");
    return ChaCha20Stream(key, {0, 0, 0}, 0);
}

void ChaCha20Stream::Refill() {
    // Block counters wrap after 2^32 blocks (256 GiB): far beyond one polynomial's use of a stream.
    Lanes input[16], x[16];
    for (int w = 0; w < 16; ++w)
        for (size_t l = 0; l < kBlocks; ++l)
            input[w][l] = state_[w] + (w == 12 ? static_cast<uint32_t>(l) : 0u);
    for (int w = 0; w < 16; ++w)
        x[w] = input[w];
    for (int round = 0; round < 10; ++round) {
        quarter_round(x[0], x[4], x[8], x[12]);
        quarter_round(x[1], x[5], x[9], x[13]);
        quarter_round(x[2], x[6], x[10], x[14]);
        quarter_round(x[3], x[7], x[11], x[15]);
        quarter_round(x[0], x[5], x[10], x[15]);
        quarter_round(x[1], x[6], x[11], x[12]);
        quarter_round(x[2], x[7], x[8], x[13]);
        quarter_round(x[3], x[4], x[9], x[14]);
    }
    for (int w = 0; w < 16; ++w) {
        const Lanes out = x[w] + input[w];
        for (size_t l = 0; l < kBlocks; ++l)
            buffer_[16 * l + w] = out[l];  // block by block: RFC 8439's order (words little-endian)
    }
    state_[12] += kBlocks;
    position_ = 0;
}

DCRTPoly UniformPolynomial(const std::shared_ptr<DCRTPoly::Params>& basis, ChaCha20Stream& stream) {
    DCRTPoly poly(basis, Format::EVALUATION, false);
    const uint32_t n = basis->GetRingDimension();
    const auto& towers = basis->GetParams();
    for (size_t i = 0; i < towers.size(); ++i) {
        const auto& modulus = towers[i]->GetModulus();
        const uint64_t q = modulus.ConvertToInt<uint64_t>();
        NativeVector values(n, modulus);
        for (uint32_t j = 0; j < n; ++j)
            values[j] = NativeInteger(UniformResidue(q, stream));
        NativePoly tower(towers[i], Format::EVALUATION);
        tower.SetValues(std::move(values), Format::EVALUATION);
        poly.SetElementAtIndex(i, std::move(tower));
    }
    return poly;
}

}  // namespace resnet_fhe
