// See fused_products.h.
#include "fused_products.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace resnet_fhe {

using namespace lbcrypto;

namespace {

using u128 = unsigned __int128;

// Residues below 2^60 (OpenFHE's largest native modulus): a sum of up to 256 products fits 128 bits.
constexpr size_t kMaxTerms = 256;
constexpr uint32_t kChunk = 256;

// a mod q for a 128-bit a, by Barrett reduction with ratio = floor((2^128 - 1) / q): the quotient estimate
// floor(a * ratio / 2^128), computed exactly modulo 2^64, is floor(a / q) or one less, so the remainder is
// below 2q (it fits 64 bits) and one subtraction finishes it.
inline uint64_t reduce_128(u128 a, uint64_t q, uint64_t ratio_low, uint64_t ratio_high) {
    const uint64_t a_low = static_cast<uint64_t>(a), a_high = static_cast<uint64_t>(a >> 64);
    const u128 low_low = static_cast<u128>(a_low) * ratio_low;
    const u128 low_high = static_cast<u128>(a_low) * ratio_high;
    const u128 high_low = static_cast<u128>(a_high) * ratio_low;
    const u128 middle = (low_low >> 64) + static_cast<uint64_t>(low_high) + static_cast<uint64_t>(high_low);
    const uint64_t quotient = a_high * ratio_high + static_cast<uint64_t>(low_high >> 64) +
                              static_cast<uint64_t>(high_low >> 64) + static_cast<uint64_t>(middle >> 64);
    const uint64_t remainder = a_low - quotient * q;
    return remainder >= q ? remainder - q : remainder;
}

// One tower's sum of products (plus an optional addend), n coefficients, written to out.
struct TowerSum {
    std::vector<const uint64_t*> left, right;
    const uint64_t* addend = nullptr;

    void Evaluate(uint64_t q, uint32_t n, uint64_t* out) const {
        const u128 ratio = ~u128{0} / q;
        u128 sums[kChunk];
        for (uint32_t start = 0; start < n; start += kChunk) {
            const uint32_t length = std::min(kChunk, n - start);
            if (addend != nullptr)
                std::copy(addend + start, addend + start + length, sums);
            else
                std::fill(sums, sums + length, u128{0});
            for (size_t t = 0; t < left.size(); ++t) {
                const uint64_t* x = left[t] + start;
                const uint64_t* y = right[t] + start;
                for (uint32_t k = 0; k < length; ++k)
                    sums[k] += static_cast<u128>(x[k]) * y[k];
            }
            for (uint32_t k = 0; k < length; ++k)
                out[start + k] = reduce_128(sums[k], q, static_cast<uint64_t>(ratio), static_cast<uint64_t>(ratio >> 64));
        }
    }
};

const uint64_t* values(const NativePoly& tower) {
    return reinterpret_cast<const uint64_t*>(&tower.GetValues()[0]);
}

uint64_t* values(NativePoly& tower) {
    return reinterpret_cast<uint64_t*>(&tower[0]);
}

void check_moduli(const DCRTPoly::Params& params, size_t terms) {
    if (terms == 0 || terms > kMaxTerms)
        throw std::invalid_argument("fused products take 1 to " + std::to_string(kMaxTerms) + " terms, not " +
                                    std::to_string(terms));
    for (const auto& tower : params.GetParams()) {
        if (tower->GetModulus().GetMSB() > 60)
            throw std::invalid_argument("fused products: a modulus exceeds 60 bits");
    }
}

}  // namespace

DCRTPoly MultiplyAccumulate(const std::vector<const DCRTPoly*>& left, const std::vector<const DCRTPoly*>& right) {
    if (left.size() != right.size())
        throw std::invalid_argument("MultiplyAccumulate: as many left as right factors");
    check_moduli(*left.at(0)->GetParams(), left.size());
    DCRTPoly out(left[0]->GetParams(), Format::EVALUATION, true);
    const uint32_t towers = out.GetNumOfElements(), n = out.GetRingDimension();
#pragma omp parallel for
    for (uint32_t i = 0; i < towers; ++i) {
        TowerSum sum;
        for (size_t t = 0; t < left.size(); ++t) {
            sum.left.push_back(values(left[t]->GetElementAtIndex(i)));
            sum.right.push_back(values(right[t]->GetElementAtIndex(i)));
        }
        auto& tower = out.GetAllElements()[i];
        sum.Evaluate(tower.GetModulus().ConvertToInt<uint64_t>(), n, values(tower));
    }
    return out;
}

std::vector<DCRTPoly> KeySwitchAutomorphism(const std::vector<DCRTPoly>& digits, const EvalKey<DCRTPoly>& key,
                                            const DCRTPoly* addend, uint32_t automorphism) {
    const auto& params = digits.at(0).GetParams();
    check_moduli(*params, digits.size() + 1);
    const std::vector<DCRTPoly>* key_parts[2] = {&key->GetBVector(), &key->GetAVector()};
    if (key_parts[0]->size() != digits.size() || key_parts[1]->size() != digits.size())
        throw std::invalid_argument("KeySwitchAutomorphism: the key has " + std::to_string(key_parts[0]->size()) +
                                    " digits, the ciphertext " + std::to_string(digits.size()));
    const uint32_t towers = digits[0].GetNumOfElements(), n = digits[0].GetRingDimension();
    const uint32_t key_towers = (*key_parts[0])[0].GetNumOfElements();
    const auto p_towers = static_cast<uint32_t>(
        std::dynamic_pointer_cast<CryptoParametersRNS>(key->GetCryptoParameters())->GetParamsP()->GetParams().size());
    if (key_towers < towers || towers <= p_towers)
        throw std::invalid_argument("KeySwitchAutomorphism: the key's basis does not cover the ciphertext's");
    const uint32_t q_towers = towers - p_towers, shift = key_towers - towers;  // P towers sit `shift` higher
    if (addend != nullptr && addend->GetNumOfElements() > towers)
        throw std::invalid_argument("KeySwitchAutomorphism: the addend has more towers than the result");
    for (const auto* part : key_parts) {
        for (const auto& digit : *part) {
            for (uint32_t i = 0; i < towers; ++i) {
                const auto& tower = digit.GetElementAtIndex(i < q_towers ? i : i + shift);
                if (tower.IsEmpty() || tower.GetLength() != n ||
                    tower.GetModulus() != params->GetParams()[i]->GetModulus())
                    throw std::invalid_argument("KeySwitchAutomorphism: the key is not made for tower " +
                                                std::to_string(i) + " of this ciphertext (a key for fewer towers?)");
            }
        }
    }
    std::vector<uint32_t> permutation(n);
    PrecomputeAutoMap(n, automorphism, &permutation);
    std::vector<DCRTPoly> result(2, DCRTPoly(params, Format::EVALUATION, true));
#pragma omp parallel
    {
        std::vector<uint64_t> switched(n);
#pragma omp for collapse(2)
        for (uint32_t part = 0; part < 2; ++part) {
            for (uint32_t i = 0; i < towers; ++i) {
                TowerSum sum;
                for (size_t d = 0; d < digits.size(); ++d) {
                    sum.left.push_back(values(digits[d].GetElementAtIndex(i)));
                    sum.right.push_back(values((*key_parts[part])[d].GetElementAtIndex(i < q_towers ? i : i + shift)));
                }
                if (part == 0 && addend != nullptr && i < addend->GetNumOfElements())
                    sum.addend = values(addend->GetElementAtIndex(i));
                auto& tower = result[part].GetAllElements()[i];
                sum.Evaluate(tower.GetModulus().ConvertToInt<uint64_t>(), n, switched.data());
                uint64_t* out = values(tower);
                for (uint32_t k = 0; k < n; ++k)
                    out[k] = switched[permutation[k]];
            }
        }
    }
    return result;
}

}  // namespace resnet_fhe
