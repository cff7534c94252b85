// See streamed_bootstrap.h. Step numbers refer to native/BOOTSTRAP-NOTES.md, section 1.
#include "streamed_bootstrap.h"

#include "fused_products.h"
#include "key_sampling.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

namespace resnet_fhe {

using namespace lbcrypto;

namespace {

// The sparse-encapsulated secret's bound on the integer part after modulus raising (OpenFHE's
// K_SPARSE_ENCAPSULATED: a Hamming weight 32 secret) and the double-angle steps after the series.
constexpr double kOverflowBound = 16.0;
constexpr int kDoubleAngleSteps = 3;
constexpr uint32_t kSeriesDegree = 32;

std::shared_ptr<CryptoParametersCKKSRNS> ckks_parameters(const CryptoContext<DCRTPoly>& cc) {
    return std::dynamic_pointer_cast<CryptoParametersCKKSRNS>(cc->GetCryptoParameters());
}

double first_modulus(const CryptoContext<DCRTPoly>& cc) {
    return cc->GetElementParams()->GetParams()[0]->GetModulus().ConvertToDouble();
}

// deg: how many bits q0 exceeds the scale by (round(log2(q0 / 2^scale bits))).
int modulus_excess_bits(const CryptoContext<DCRTPoly>& cc) {
    const double scale = std::ldexp(1.0, ckks_parameters(cc)->GetPlaintextModulus());
    return static_cast<int>(std::round(std::log2(first_modulus(cc) / scale)));
}

// What the modular reduction evaluates before its double-angle steps: after R steps of c -> 2c^2 - a^2
// (the amplitude a squares each time), (2 pi)^(-1/2^R) cos(2 pi (K y - 1/4) / 2^R) becomes
// sin(2 pi K y) / (2 pi), which is the message where K y is the message plus an integer.
// Interpolated at the Chebyshev nodes of the first kind; c_0 is doubled, as OpenFHE's series expect.
std::vector<double> scaled_cosine_series() {
    const double two_pi = 2.0 * M_PI;
    const double steps = std::ldexp(1.0, kDoubleAngleSteps);
    const uint32_t nodes = kSeriesDegree + 1;
    std::vector<double> values(nodes);
    for (uint32_t j = 0; j < nodes; ++j) {
        const double y = std::cos(M_PI * (j + 0.5) / nodes);
        values[j] = std::pow(two_pi, -1.0 / steps) * std::cos(two_pi * (kOverflowBound * y - 0.25) / steps);
    }
    std::vector<double> series(nodes);
    for (uint32_t k = 0; k < nodes; ++k) {
        double sum = 0;
        for (uint32_t j = 0; j < nodes; ++j)
            sum += values[j] * std::cos(M_PI * k * (j + 0.5) / nodes);
        series[k] = 2.0 * sum / nodes;
    }
    return series;
}

}  // namespace

namespace {

// The digits a hybrid key switch of a ciphertext with `towers` Q towers decomposes it into.
uint32_t digits_at(uint32_t towers, const CryptoParametersCKKSRNS& params) {
    return std::min<uint32_t>((towers + params.GetNumPerPartQ() - 1) / params.GetNumPerPartQ(),
                              params.GetNumberOfQPartitions());
}

// The extended basis of a level with `towers` Q towers: q_0 .. q_(towers-1), then every p.
std::shared_ptr<DCRTPoly::Params> extended_basis(const CryptoContext<DCRTPoly>& cc, uint32_t towers) {
    const auto& q = cc->GetElementParams()->GetParams();
    std::vector<NativeInteger> moduli, roots;
    for (uint32_t i = 0; i < towers; ++i) {
        moduli.push_back(q[i]->GetModulus());
        roots.push_back(q[i]->GetRootOfUnity());
    }
    for (const auto& tower : ckks_parameters(cc)->GetParamsP()->GetParams()) {
        moduli.push_back(tower->GetModulus());
        roots.push_back(tower->GetRootOfUnity());
    }
    return std::make_shared<DCRTPoly::Params>(cc->GetCyclotomicOrder(), moduli, roots);
}

// One tower of a key's b: noise * e - a * s (+ p_mod_q * s_old on its digit's towers), in one pass
// (DCRTPoly's operators make a temporary for each product and sum: a tenth of keygen's time).
NativePoly key_tower(const NativePoly& a, const NativePoly& s, const NativePoly& e, uint64_t noise,
                     const NativePoly* s_old, const NativeInteger& p_mod_q) {
    const auto& modulus = a.GetModulus();
    const auto mu = modulus.ComputeMu();
    const NativeInteger noise_mod = NativeInteger(noise).Mod(modulus);
    const auto& a_values = a.GetValues();
    const auto& s_values = s.GetValues();
    const auto& e_values = e.GetValues();
    const uint32_t n = a.GetLength();
    NativeVector b(n, modulus);
    for (uint32_t j = 0; j < n; ++j) {
        NativeInteger value = e_values[j];
        if (noise_mod != NativeInteger(1))
            value = value.ModMulFast(noise_mod, modulus, mu);
        value.ModSubFastEq(a_values[j].ModMulFast(s_values[j], modulus, mu), modulus);
        if (s_old)
            value.ModAddFastEq(s_old->GetValues()[j].ModMulFast(p_mod_q, modulus, mu), modulus);
        b[j] = value;
    }
    NativePoly tower(a.GetParams(), Format::EVALUATION);
    tower.SetValues(std::move(b), Format::EVALUATION);
    return tower;
}

}  // namespace

// A hybrid key-switching key from s_old to s_new made at `towers` Q towers only: for each digit d of
// the first digits_at(towers), b_d = -a_d s_new + e_d + [P s_old on d's towers], a_d uniform and e_d
// Gaussian over q_0..q_(towers-1), p_0..p_(K-1). A full key's towers restricted to these have exactly this
// distribution; the rest are never made (OpenFHE's EvalAtIndexKeyGen makes every tower and digit: for a
// key used at 3 of 35 towers over 90 % of that work and of its bytes would be thrown away). The Q towers
// from `towers` on are left empty rather than removed, so the P towers keep the indices OpenFHE reads them
// at (keyswitch-hybrid.cpp, EvalFastKeySwitchCoreExt: tower i or i + L0 - towers).
EvalKey<DCRTPoly> KeySwitchKeyAtTowers(const DCRTPoly& s_old, const DCRTPoly& s_new, uint32_t towers,
                                       const CryptoContext<DCRTPoly>& cc) {
    const auto params = ckks_parameters(cc);
    const auto& q = params->GetElementParams()->GetParams();
    const auto full = params->GetParamsQP();
    const uint32_t all_towers = static_cast<uint32_t>(q.size());
    if (towers == 0 || towers > all_towers)
        throw std::invalid_argument("KeySwitchKeyAtTowers: towers must be 1 to " + std::to_string(all_towers));
    const auto reduced = extended_basis(cc, towers);
    const uint32_t size = static_cast<uint32_t>(reduced->GetParams().size());
    // s_new in the reduced basis: its own Q towers, and its P towers from tower 0's small coefficients.
    DCRTPoly s_new_ext(reduced, Format::EVALUATION, true);
    auto s_new_0 = s_new.GetElementAtIndex(0);
    s_new_0.SetFormat(Format::COEFFICIENT);
    for (uint32_t i = 0; i < size; ++i) {
        auto tower = i < towers ? s_new.GetElementAtIndex(i) : s_new_0;
        if (i >= towers)
            tower.SwitchModulus(reduced->GetParams()[i]->GetModulus(), reduced->GetParams()[i]->GetRootOfUnity(), 0, 0);
        tower.SetFormat(Format::EVALUATION);
        s_new_ext.SetElementAtIndex(i, std::move(tower));
    }
    const uint32_t per_digit = params->GetNumPerPartQ();
    const uint32_t digits = digits_at(towers, *params);
    const auto noise_scale = params->GetNoiseScale();
    const auto& p_mod_q = params->GetPModq();
    auto stream = ChaCha20Stream::FromEntropy();
    auto gaussian = params->GetDiscreteGaussianGenerator();
    std::vector<DCRTPoly> a_parts(digits), b_parts(digits);
    for (uint32_t d = 0; d < digits; ++d) {
        DCRTPoly a = UniformPolynomial(reduced, stream);
        DCRTPoly e(gaussian, reduced, Format::EVALUATION);
        DCRTPoly a_full(full, Format::EVALUATION, false), b_full(full, Format::EVALUATION, false);
        for (uint32_t i = 0; i < size; ++i) {
            const bool in_digit = i < towers && i >= d * per_digit && i < (d + 1) * per_digit;
            auto b_i = key_tower(a.GetElementAtIndex(i), s_new_ext.GetElementAtIndex(i), e.GetElementAtIndex(i),
                                 noise_scale, in_digit ? &s_old.GetElementAtIndex(i) : nullptr,
                                 in_digit ? p_mod_q[i] : NativeInteger(0));
            const uint32_t index = i < towers ? i : all_towers + (i - towers);  // P towers after all of Q's
            a_full.SetElementAtIndex(index, std::move(a.GetAllElements()[i]));
            b_full.SetElementAtIndex(index, std::move(b_i));
        }
        a_parts[d] = std::move(a_full);
        b_parts[d] = std::move(b_full);
    }
    auto key = std::make_shared<EvalKeyRelinImpl<DCRTPoly>>(cc);
    key->SetAVector(std::move(a_parts));
    key->SetBVector(std::move(b_parts));
    return key;
}

std::shared_ptr<KeyMap> RotationKeysAtTowers(const PrivateKey<DCRTPoly>& sk, const std::vector<int32_t>& rotations,
                                             uint32_t towers) {
    const auto cc = sk->GetCryptoContext();
    const auto& s = sk->GetPrivateElement();
    const uint32_t ring = cc->GetRingDimension();
    const uint32_t order = cc->GetCyclotomicOrder();
    std::vector<uint32_t> automorphisms;
    for (int32_t rotation : rotations)
        automorphisms.push_back(FindAutomorphismIndex2nComplex(rotation, order));
    std::vector<EvalKey<DCRTPoly>> keys(automorphisms.size());
    // The key for automorphism k switches from s to k^-1(s), which a hoisted rotation (key switch first,
    // then the automorphism) expects: the same convention as OpenFHE's EvalAutomorphismKeyGen.
#pragma omp parallel for
    for (size_t r = 0; r < automorphisms.size(); ++r) {
        const uint32_t inverse = NativeInteger(automorphisms[r]).ModInverse(order).ConvertToInt<uint32_t>();
        std::vector<uint32_t> permutation(ring);
        PrecomputeAutoMap(ring, inverse, &permutation);
        keys[r] = KeySwitchKeyAtTowers(s, s.AutomorphismTransform(inverse, permutation), towers, cc);
        keys[r]->SetKeyTag(sk->GetKeyTag());
    }
    auto map = std::make_shared<KeyMap>();
    for (size_t r = 0; r < automorphisms.size(); ++r)
        (*map)[automorphisms[r]] = keys[r];
    return map;
}

bool KeyServesTowers(const EvalKey<DCRTPoly>& key, uint32_t towers, const CryptoParametersCKKSRNS& params) {
    const uint32_t all_towers = params.GetElementParams()->GetParams().size();
    const auto& parts = key->GetAVector();
    if (towers == 0 || towers > all_towers || parts.size() < digits_at(towers, params))
        return false;
    for (uint32_t j = 0; j < digits_at(towers, params); ++j) {
        const auto& polys = parts[j].GetAllElements();
        if (polys.size() <= all_towers || polys[towers - 1].IsEmpty() || polys[all_towers].IsEmpty())
            return false;
    }
    return true;
}

StreamedBootstrap::StreamedBootstrap(const CryptoContext<DCRTPoly>& cc, std::vector<uint32_t> level_budget,
                                     std::vector<uint32_t> dim1, uint32_t slots, uint32_t correction_factor)
    : cc_(cc), slots_(slots), sine_series_(scaled_cosine_series()) {
    const auto params = ckks_parameters(cc);
    if (params->GetScalingTechnique() != FLEXIBLEAUTO || params->GetKeySwitchTechnique() != HYBRID ||
        params->GetSecretKeyDist() != SPARSE_ENCAPSULATED || params->GetCompositeDegree() != 1)
        throw std::invalid_argument("StreamedBootstrap supports FLEXIBLEAUTO scaling, HYBRID key switching and "
                                    "SPARSE_ENCAPSULATED secrets only (the presets' settings)");
    const uint32_t quarter = cc->GetCyclotomicOrder() / 4;
    if (slots < 4 || slots > quarter || (slots & (slots - 1)))
        throw std::invalid_argument("StreamedBootstrap: slots must be a power of two from 4 to " +
                                    std::to_string(quarter) + ", not " + std::to_string(slots));
    if (level_budget.size() != 2 || dim1.size() != 2)
        throw std::invalid_argument("StreamedBootstrap: level_budget and dim1 take two values each");
    // The correction factor OpenFHE would choose (its EvalBootstrapSetup on a scratch instance, which
    // encodes nothing when asked not to precompute).
    FHECKKSRNS setup;
    setup.EvalBootstrapSetup(*cc, level_budget, dim1, slots, correction_factor, false, false);
    correction_factor_ = setup.GetCKKSBootCorrectionFactor();
    const uint32_t log_slots = static_cast<uint32_t>(std::log2(slots));
    encode_params_ = GetCollapsedFFTParams(slots, std::clamp(level_budget[0], 1u, log_slots), dim1[0]);
    decode_params_ = GetCollapsedFFTParams(slots, std::clamp(level_budget[1], 1u, log_slots), dim1[1]);
    // CoeffsToSlots starts one tower below the raised modulus (after the normalisation's rescale);
    // SlotsToCoeffs where the bootstrap depth (OpenFHE's count) leaves its levels.
    const uint32_t towers = cc->GetElementParams()->GetParams().size();
    const uint32_t depth = FHECKKSRNS::GetBootstrapDepth({encode_params_.lvlb, decode_params_.lvlb},
                                                         params->GetSecretKeyDist());
    AddStages(encode_params_, true, towers - 1);
    AddStages(decode_params_, false, towers - depth + decode_params_.lvlb);

    const uint32_t m = 4 * slots;
    std::vector<uint32_t> rotation_group(slots);  // 5^i mod 4 * slots
    for (uint32_t i = 0, power = 1; i < slots; ++i, power = (power * 5) & (m - 1))
        rotation_group[i] = power;
    std::vector<std::complex<double>> roots(m + 1);  // exp(2 pi i j / m), the last one again 1
    for (uint32_t j = 0; j <= m; ++j)
        roots[j] = std::polar(1.0, 2.0 * M_PI * (j % m) / m);
    const bool sparse = slots < quarter;
    encode_ = CoeffEncodingCollapse(roots, rotation_group, encode_params_.lvlb, false);
    decode_ = CoeffDecodingCollapse(roots, rotation_group, decode_params_.lvlb, false);
    if (sparse) {
        encode_imaginary_ = CoeffEncodingCollapse(roots, rotation_group, encode_params_.lvlb, true);
        decode_imaginary_ = CoeffDecodingCollapse(roots, rotation_group, decode_params_.lvlb, true);
    }
}

// CoeffsToSlots runs its levels from the last (s = lvlb - 1) down, its remainder level (fewer layers) at
// s = 0; SlotsToCoeffs runs s = 0 up, its remainder last. CoeffsToSlots reduces its baby steps modulo
// the slots, SlotsToCoeffs modulo N/2. Each stage spends one tower.
void StreamedBootstrap::AddStages(const ckks_boot_params& p, bool coeffs_to_slots, uint32_t first_towers) {
    const int64_t half_ring = cc_->GetCyclotomicOrder() / 4;
    const bool remainder = p.remCollapse != 0;
    const uint32_t full_levels = p.lvlb - (remainder ? 1 : 0);
    auto stage = [&](uint32_t s, bool is_remainder, int64_t scale) {
        const uint32_t g = is_remainder ? p.gRem : p.g;
        const uint32_t b = is_remainder ? p.bRem : p.b;
        const uint32_t rotations = is_remainder ? p.numRotationsRem : p.numRotations;
        const int64_t offset = static_cast<int64_t>((rotations + 1) / 2) - 1;
        const uint32_t towers = first_towers - static_cast<uint32_t>(stages_.size() - (coeffs_to_slots ? 0 : encode_params_.lvlb));
        FftStage level{coeffs_to_slots, s, towers, rotations, {}, {}, 0};
        for (uint32_t j = 0; j < g; ++j) {
            const int64_t amount = scale * (static_cast<int64_t>(j) - offset);
            level.baby.push_back(static_cast<int32_t>(ReduceRotation(static_cast<int32_t>(amount),
                                                                     coeffs_to_slots ? slots_ : half_ring)));
        }
        for (uint32_t i = 0; i < b; ++i)
            level.giant.push_back(static_cast<int32_t>(
                ReduceRotation(static_cast<int32_t>(scale * g * i), static_cast<uint32_t>(half_ring))));
        level.giant_step = b > 1 ? level.giant[1] : 0;
        stages_.push_back(std::move(level));
    };
    if (coeffs_to_slots) {
        for (int64_t s = p.lvlb - 1; s >= 0; --s) {
            const bool is_remainder = remainder && s == 0;
            const int64_t layers = is_remainder ? 0 : (s - (remainder ? 1 : 0)) * p.layersCollapse + p.remCollapse;
            stage(static_cast<uint32_t>(s), is_remainder, int64_t{1} << layers);
        }
    }
    else {
        for (uint32_t s = 0; s < p.lvlb; ++s)
            stage(s, remainder && s == full_levels, int64_t{1} << (s * p.layersCollapse));
    }
}

const FftStage& StreamedBootstrap::Stage(uint32_t k) const {
    if (k >= stages_.size())
        throw std::out_of_range("StreamedBootstrap: stage " + std::to_string(k) + " of " +
                                std::to_string(stages_.size()));
    return stages_[k];
}

std::vector<int32_t> StreamedBootstrap::StageRotations(uint32_t k) const {
    const auto& stage = Stage(k);
    std::set<int32_t> amounts(stage.baby.begin(), stage.baby.end());
    amounts.insert(stage.giant_step);
    amounts.erase(0);
    return {amounts.begin(), amounts.end()};
}

std::vector<int32_t> StreamedBootstrap::SpecialRotations() const {
    std::vector<int32_t> rotations;
    const uint32_t ring = cc_->GetRingDimension();
    for (uint32_t j = 1; j < ring / (2 * slots_); j <<= 1)
        rotations.push_back(static_cast<int32_t>(j * slots_));
    return rotations;
}

namespace {

// Rotation keys into a fresh map, checked complete: OpenFHE silently skips indices the context's table
// already holds for the key's tag.
std::shared_ptr<KeyMap> rotation_keys(const CryptoContext<DCRTPoly>& cc, const PrivateKey<DCRTPoly>& sk,
                                      const std::vector<int32_t>& rotations) {
    if (rotations.empty())
        return std::make_shared<KeyMap>();
    auto keys = cc->GetScheme()->EvalAtIndexKeyGen(sk, rotations);
    for (int32_t rotation : rotations) {
        if (!keys->count(FindAutomorphismIndex2nComplex(rotation, cc->GetCyclotomicOrder())))
            throw std::runtime_error("StreamedBootstrap: the context already holds an automorphism key for "
                                     "rotation " + std::to_string(rotation) + ", so OpenFHE did not make it: "
                                     "clear the context's automorphism keys before making bootstrap keys");
    }
    return keys;
}

}  // namespace

std::shared_ptr<KeyMap> StreamedBootstrap::GenerateStageKeys(const PrivateKey<DCRTPoly>& sk, uint32_t k) const {
    return RotationKeysAtTowers(sk, StageRotations(k), Stage(k).towers);
}

std::shared_ptr<KeyMap> StreamedBootstrap::GenerateSpecialKeys(const PrivateKey<DCRTPoly>& sk) const {
    auto keys = rotation_keys(cc_, sk, SpecialRotations());
    const uint32_t order = cc_->GetCyclotomicOrder();
    (*keys)[order - 1] = FHECKKSRNS::ConjugateKeyGen(sk);
    // The sparse secret of the modulus raising lives only in these two keys (to it, and back).
    auto sparse = std::make_shared<PrivateKeyImpl<DCRTPoly>>(cc_);
    DCRTPoly::TugType ternary;
    sparse->SetPrivateElement(DCRTPoly(ternary, cc_->GetElementParams(), Format::EVALUATION, 32));
    (*keys)[order - 4] = FHECKKSRNS::KeySwitchGenSparse(sk, sparse);
    (*keys)[order - 2] = cc_->GetScheme()->KeySwitchGen(sparse, sk);
    return keys;
}

// The homomorphic DFT's diagonals of one stage: the FFT factor matrices' vectors for the stage's level,
// the real and imaginary halves side by side for a sparse vector, scaled on each transform's last level,
// pre-rotated by minus the stage's giant step of their partial sum, and encoded in the extended basis Q*P
// at the stage's towers (evaluation form: the products need no transform).
std::shared_ptr<StageDiagonals> StreamedBootstrap::EncodeStage(uint32_t k) const {
    const auto& stage = Stage(k);
    const bool sparse = slots_ < cc_->GetCyclotomicOrder() / 4;
    const auto& real = stage.coeffs_to_slots ? encode_ : decode_;
    const auto& imaginary = stage.coeffs_to_slots ? encode_imaginary_ : decode_imaginary_;
    // q0 is not a power of two: the encoding absorbs q0 / 2^round(log2 q0) (and the overflow bound),
    // the decoding its inverse.
    const double q0 = first_modulus(cc_);
    const double pre = q0 / std::ldexp(1.0, static_cast<int>(std::round(std::log2(q0))));
    const bool last = stage.coeffs_to_slots ? stage.level == 0 : stage.level + 1 == decode_params_.lvlb;
    const double factor = !last ? 1.0 : stage.coeffs_to_slots ? pre / kOverflowBound : 1.0 / pre;

    const auto extended = extended_basis(cc_, stage.towers);
    const uint32_t level = static_cast<uint32_t>(cc_->GetElementParams()->GetParams().size()) - stage.towers;
    const uint32_t g = static_cast<uint32_t>(stage.baby.size());
    auto result = std::make_shared<StageDiagonals>();
    result->diagonals.resize(stage.diagonals);
    std::vector<double> scaling_factors(stage.diagonals);
#pragma omp parallel for
    for (uint32_t d = 0; d < stage.diagonals; ++d) {
        std::vector<std::complex<double>> values = real[stage.level][d];
        if (sparse)
            values.insert(values.end(), imaginary[stage.level][d].begin(), imaginary[stage.level][d].end());
        for (auto& value : values)
            value *= factor;
        const uint32_t length = static_cast<uint32_t>(values.size());
        const uint32_t shift = ReduceRotation(-stage.giant[d / g], length);
        std::rotate(values.begin(), values.begin() + shift, values.end());
        const auto plaintext = FHECKKSRNS::MakeAuxPlaintext(*cc_, extended, values, 1, level, length);
        DCRTPoly element = plaintext->GetElement<DCRTPoly>();
        element.SetFormat(Format::EVALUATION);
        result->diagonals[d] = std::move(element);
        scaling_factors[d] = plaintext->GetScalingFactor();
    }
    result->scaling_factor = scaling_factors.front();  // one level, one factor
    return result;
}

Ciphertext<DCRTPoly> StreamedBootstrap::Begin(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const {
    const auto params = ckks_parameters(cc_);
    const auto scheme = cc_->GetScheme();
    const uint32_t ring = cc_->GetRingDimension();
    const uint32_t order = cc_->GetCyclotomicOrder();
    if (input->GetSlots() != slots_)
        throw std::invalid_argument("StreamedBootstrap: the ciphertext has " + std::to_string(input->GetSlots()) +
                                    " slots, this bootstrap " + std::to_string(slots_));
    // Step 1: q0 exceeds the scale by 2^deg; the message is scaled down by 2^(correction factor - deg)
    // before the modular reduction (less wrap-around error) and scaled back in Finish.
    const int deg = modulus_excess_bits(cc_);
    if (deg > static_cast<int>(correction_factor_))
        throw std::invalid_argument("StreamedBootstrap: q0 / scale is 2^" + std::to_string(deg) +
                                    ", more than the correction factor " + std::to_string(correction_factor_));
    const int correction = static_cast<int>(correction_factor_) - deg;

    // Step 2: rescale, then one more multiplication that brings the scale to level 0's and divides by
    // 2^correction, spending the last tower but one.
    auto ct = input->Clone();
    scheme->ModReduceInternalInPlace(ct, ct->GetNoiseScaleDeg() - 1);
    const double target = params->GetScalingFactorReal(0);
    const double source = ct->GetScalingFactor();
    const uint32_t towers = ct->GetElements()[0].GetNumOfElements();
    const double dropped = cc_->GetElementParams()->GetParams()[towers - 1]->GetModulus().ConvertToDouble();
    cc_->EvalMultInPlace(ct, (target / source) * (dropped / source) * std::ldexp(1.0, -correction));
    scheme->ModReduceInternalInPlace(ct, 1);
    ct->SetScalingFactor(target);

    // Step 3: to the sparse secret at q0, raise the modulus (tower 0 read in every modulus), back to s.
    ct = FHECKKSRNS::KeySwitchSparse(ct, special.at(order - 4));
    for (auto& element : ct->GetElements()) {
        element.SetFormat(Format::COEFFICIENT);
        DCRTPoly raised(element.GetElementAtIndex(0), cc_->GetElementParams());
        raised.SetFormat(Format::EVALUATION);
        element = std::move(raised);
    }
    ct->SetLevel(0);
    scheme->KeySwitchInPlace(ct, special.at(order - 2));

    // Step 4-6: normalise for the sine's domain, sum the ring's copies of a sparse vector, rescale.
    cc_->EvalMultInPlace(ct, std::ldexp(1.0, -deg) / ring);
    for (int32_t rotation : SpecialRotations())
        cc_->EvalAddInPlace(ct, scheme->EvalAtIndex(ct, static_cast<uint32_t>(rotation), special));
    scheme->ModReduceInternalInPlace(ct, 1);
    return ct;
}

Ciphertext<DCRTPoly> StreamedBootstrap::ApplyStage(uint32_t k, const Ciphertext<DCRTPoly>& input,
                                                   const KeyMap& keys, const StageDiagonals& encoded) const {
    const auto& stage = Stage(k);
    const auto& diagonals = encoded.diagonals;
    if (diagonals.size() != stage.diagonals ||
        diagonals.front().GetNumOfElements() != stage.towers + ckks_parameters(cc_)->GetParamsP()->GetParams().size())
        throw std::invalid_argument("StreamedBootstrap: these are not stage " + std::to_string(k) + "'s diagonals");
    for (int32_t rotation : StageRotations(k)) {
        if (!keys.count(FindAutomorphismIndex2nComplex(rotation, cc_->GetCyclotomicOrder())))
            throw std::invalid_argument("StreamedBootstrap: stage " + std::to_string(k) +
                                        " lacks the key for rotation " + std::to_string(rotation));
    }
    const auto scheme = cc_->GetScheme();

    // Every level but a transform's first starts from the previous level's unrescaled product.
    auto ct = input->Clone();
    const bool first_of_transform = k == 0 || stages_[k - 1].coeffs_to_slots != stage.coeffs_to_slots;
    if (!first_of_transform)
        scheme->ModReduceInternalInPlace(ct, 1);
    if (ct->GetElements()[0].GetNumOfElements() != stage.towers)
        throw std::invalid_argument("StreamedBootstrap: stage " + std::to_string(k) + " expects a ciphertext of " +
                                    std::to_string(stage.towers) + " towers, not " +
                                    std::to_string(ct->GetElements()[0].GetNumOfElements()) +
                                    " (stages run in order, EvalMod between the two transforms)");

    // Hoisted baby steps, left in Q*P: P * c0 plus the key switch of c1's digits, rotated.
    const auto digits = cc_->EvalFastRotationPrecompute(ct);
    const DCRTPoly scaled_c0 = ct->GetElements()[0].TimesNoCheck(ckks_parameters(cc_)->GetPModq());
    const uint32_t g = static_cast<uint32_t>(stage.baby.size());
    std::vector<Ciphertext<DCRTPoly>> babies(g);
#pragma omp parallel for
    for (uint32_t j = 0; j < g; ++j) {
        if (stage.baby[j] == 0) {
            babies[j] = cc_->KeySwitchExt(ct, true);
            continue;
        }
        const uint32_t automorphism = FindAutomorphismIndex2nComplex(stage.baby[j], cc_->GetCyclotomicOrder());
        babies[j] = ct->CloneEmpty();
        babies[j]->SetElements(KeySwitchAutomorphism(*digits, keys.at(automorphism), &scaled_c0, automorphism));
    }

    // Horner from the last block down: acc = block_i + rotate(giant_step, acc), all in Q*P; one key
    // switch down at the end.
    // Each block is one fused multiply-accumulate per ciphertext element (a product in Q*P: the key
    // switch down comes later).
    Ciphertext<DCRTPoly> acc;
    for (uint32_t i = static_cast<uint32_t>(stage.giant.size()); i-- > 0;) {
        std::vector<const DCRTPoly*> block_diagonals;
        for (uint32_t j = 0; j < g && i * g + j < stage.diagonals; ++j)
            block_diagonals.push_back(&diagonals[i * g + j]);
        std::vector<DCRTPoly> block(2);
        for (uint32_t element = 0; element < 2; ++element) {
            std::vector<const DCRTPoly*> block_babies;
            for (uint32_t j = 0; j < block_diagonals.size(); ++j)
                block_babies.push_back(&babies[j]->GetElements()[element]);
            block[element] = MultiplyAccumulate(block_babies, block_diagonals);
        }
        if (acc) {
            acc = RotateExtended(acc, stage.giant_step, keys);
            for (uint32_t element = 0; element < 2; ++element)
                acc->GetElements()[element] += block[element];
        }
        else {
            acc = babies[0]->CloneEmpty();
            acc->SetElements(std::move(block));
            acc->SetNoiseScaleDeg(babies[0]->GetNoiseScaleDeg() + 1);
            acc->SetScalingFactor(babies[0]->GetScalingFactor() * encoded.scaling_factor);
        }
    }
    return cc_->KeySwitchDown(acc);
}

// rotate(amount, ct) for a ciphertext in the extended basis Q*P (P times a ciphertext of Q, as hoisted
// rotations leave it), the result in Q*P too. c0 is only permuted, so it stays in Q*P; c1 comes down to
// Q, is split into digits and key-switched into Q*P, then permuted with c0 (the order of OpenFHE's hoisted
// rotations, whose keys expect it).
Ciphertext<DCRTPoly> StreamedBootstrap::RotateExtended(const Ciphertext<DCRTPoly>& ct, int32_t amount,
                                                       const KeyMap& keys) const {
    const auto params = ckks_parameters(cc_);
    const uint32_t order = cc_->GetCyclotomicOrder();
    const uint32_t automorphism = FindAutomorphismIndex2nComplex(amount, order);
    const auto key = keys.find(automorphism);
    if (key == keys.end())
        throw std::invalid_argument("StreamedBootstrap: no key for rotation " + std::to_string(amount));
    const auto& elements = ct->GetElements();
    const auto extended = elements[0].GetParams();
    const uint32_t towers = static_cast<uint32_t>(extended->GetParams().size() - params->GetParamsP()->GetParams().size());
    std::vector<NativeInteger> moduli(towers), roots(towers);
    for (uint32_t i = 0; i < towers; ++i) {
        moduli[i] = extended->GetParams()[i]->GetModulus();
        roots[i] = extended->GetParams()[i]->GetRootOfUnity();
    }
    const auto base = std::make_shared<DCRTPoly::Params>(extended->GetCyclotomicOrder(), moduli, roots);
    const DCRTPoly c1 = elements[1].ApproxModDown(
        base, params->GetParamsP(), params->GetPInvModq(), params->GetPInvModqPrecon(), params->GetPHatInvModp(),
        params->GetPHatInvModpPrecon(), params->GetPHatModq(), params->GetModqBarrettMu(), params->GettInvModp(),
        params->GettInvModpPrecon(), params->GetNoiseScale() == 1 ? 0 : params->GetPlaintextModulus(),
        params->GettModqPrecon());
    const auto digits = cc_->GetScheme()->EvalKeySwitchPrecomputeCore(c1, params);
    auto result = ct->CloneEmpty();
    result->SetElements(KeySwitchAutomorphism(*digits, key->second, &elements[0], automorphism));
    return result;
}

// Steps 9-10 on one ciphertext: the scaled cosine, then double-angle steps c -> 2c^2 - a^2 that turn it
// into sin(2 pi K y) / (2 pi).
Ciphertext<DCRTPoly> StreamedBootstrap::ReduceModulo(const Ciphertext<DCRTPoly>& input) const {
    const auto scheme = cc_->GetScheme();
    auto ct = scheme->EvalChebyshevSeries(input, sine_series_, -1.0, 1.0);
    scheme->ModReduceInternalInPlace(ct, 1);
    for (int step = 1 - kDoubleAngleSteps; step <= 0; ++step) {
        const double amplitude_squared = std::pow(2.0 * M_PI, -std::ldexp(1.0, step));
        cc_->EvalSquareInPlace(ct);
        ct = cc_->EvalAdd(cc_->EvalAdd(ct, ct), -amplitude_squared);
        cc_->ModReduceInPlace(ct);
    }
    return ct;
}

Ciphertext<DCRTPoly> StreamedBootstrap::EvalMod(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const {
    const auto scheme = cc_->GetScheme();
    const auto conjugate = FHECKKSRNS::Conjugate(input, special);
    Ciphertext<DCRTPoly> ct;
    if (slots_ < cc_->GetCyclotomicOrder() / 4) {
        // Step 8 (sparse): the slots hold two halves of the coefficients as real and imaginary parts of
        // a periodic vector; the real part (twice) carries all of them.
        ct = cc_->EvalAdd(input, conjugate);
        if (ct->GetNoiseScaleDeg() == 2)
            scheme->ModReduceInternalInPlace(ct, 1);
        ct = ReduceModulo(ct);
    }
    else {
        // Step 8 (full packing): real and imaginary parts reduced apart; X^(3N/2) and X^(N/2) multiply by
        // -i and i, moving the imaginary part to the real axis and back.
        const uint32_t slots = slots_;
        ct = cc_->EvalAdd(input, conjugate);
        auto imaginary = cc_->EvalSub(input, conjugate);
        scheme->MultByMonomialInPlace(imaginary, 3 * slots);
        if (ct->GetNoiseScaleDeg() == 2) {
            scheme->ModReduceInternalInPlace(ct, 1);
            scheme->ModReduceInternalInPlace(imaginary, 1);
        }
        ct = ReduceModulo(ct);
        imaginary = ReduceModulo(imaginary);
        scheme->MultByMonomialInPlace(imaginary, slots);
        cc_->EvalAddInPlaceNoCheck(ct, imaginary);
    }
    // Step 11: undo the 2^-deg of the normalisation.
    scheme->MultByIntegerInPlace(ct, uint64_t{1} << modulus_excess_bits(cc_));
    scheme->ModReduceInternalInPlace(ct, 1);
    return ct;
}

Ciphertext<DCRTPoly> StreamedBootstrap::Finish(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const {
    const auto scheme = cc_->GetScheme();
    auto ct = input->Clone();
    // Step 13-14: a sparse vector's copies summed once more, then the correction scaled back.
    if (slots_ < cc_->GetCyclotomicOrder() / 4)
        cc_->EvalAddInPlace(ct, scheme->EvalAtIndex(ct, slots_, special));
    scheme->MultByIntegerInPlace(ct, uint64_t{1} << (correction_factor_ - modulus_excess_bits(cc_)));
    return ct;
}

}  // namespace resnet_fhe
