// resnet-fhe's own CKKS bootstrapping on OpenFHE's arithmetic: the same mathematics as OpenFHE's
// EvalBootstrap (FLEXIBLEAUTO, hybrid key switching, SPARSE_ENCAPSULATED secrets), cut into stages so that a
// caller holds only one stage's rotation keys at a time.
//
// Why: OpenFHE's EvalBootstrap reads every rotation key of a slot count from the context's one key table
// for the whole call (~100 keys at 16,384 slots, ~10 GB at N = 2^16). Here the homomorphic DFT runs level by
// level (StageCount stages: the CoeffsToSlots levels, then the SlotsToCoeffs levels), each with an
// explicit key map that the caller loads just before the stage and frees after it; only the conjugation,
// sparse-encapsulation and partial-sum keys (SpecialKeys) stay for the whole bootstrap.
//
// native/BOOTSTRAP-NOTES.md records how OpenFHE v1.5.1 bootstraps, which this follows step for step; no
// OpenFHE code is copied. The diagonals are encoded here too, each pre-rotated by the giant step of its own
// stage: OpenFHE 1.5.1's SlotsToCoeffs precomputation pre-rotates the remainder level's diagonals by the
// full levels' giant step, which is wrong whenever dim1 makes the two differ (the presets' dim1 (8, 4) at
// 16,384 slots: noise instead of the message). The encoded diagonals come stage by stage too
// (EncodeStage; the caller keeps them in memory or on disk), and each stage's keys keep only the towers
// and digits its level reads.
#pragma once

#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "openfhe.h"
#include "scheme/ckksrns/ckksrns-fhe.h"
#include "scheme/ckksrns/ckksrns-utils.h"

namespace resnet_fhe {

using lbcrypto::Ciphertext;
using lbcrypto::CryptoContext;
using lbcrypto::DCRTPoly;
using lbcrypto::EvalKey;
using lbcrypto::PrivateKey;
using lbcrypto::ReadOnlyPlaintext;
using KeyMap = std::map<uint32_t, EvalKey<DCRTPoly>>;

// Keys made for the levels that use them. A hybrid key switch of a ciphertext with `towers` Q towers reads
// only its first ceil(towers / alpha) digits and, in them, the first `towers` Q towers (and all of P): a key
// used at one level is made with just that (a SlotsToCoeffs stage's: about 40 % of a full key at the
// presets; a convolution's at 2-3 towers: about 8 %). Such a key must never meet a ciphertext with more
// towers (OpenFHE would read the towers it lacks): callers check KeyServesTowers first.
bool KeyServesTowers(const EvalKey<DCRTPoly>& key, uint32_t towers, const lbcrypto::CryptoParametersCKKSRNS& params);
// Rotation keys made at `towers` only (otherwise OpenFHE's EvalAtIndexKeyGen convention), keyed by
// automorphism index and tagged with the secret key's tag.
std::shared_ptr<KeyMap> RotationKeysAtTowers(const PrivateKey<DCRTPoly>& sk, const std::vector<int32_t>& rotations,
                                             uint32_t towers);

// One baby-step giant-step level of the homomorphic DFT: the result is
//   sum_i rotate(giant[i], block_i),  block_i = sum_j diagonal[g*i + j] * rotate(baby[j], input),
// with giant[i] = i * giant_step. The baby rotations are hoisted (one digit decomposition); the giant
// ones run in Horner form, block_0 + rotate(t, block_1 + rotate(t, block_2 + ...)), so the level needs
// one giant-step key instead of one per block: a stage's keys (what a streamed bootstrap reads from disk
// per stage) are the baby steps' and one more. The same number of key switches either way; the sums stay
// in the extended basis Q*P throughout, and each Horner rotation brings only the c1 part down to Q.
struct FftStage {
    bool coeffs_to_slots;             // a CoeffsToSlots level (before EvalMod), else SlotsToCoeffs
    uint32_t level;                   // the level's index s in its transform's FFT factorisation
    uint32_t towers;                  // RNS towers (of Q) of the ciphertext the diagonals multiply
    uint32_t diagonals;               // diagonals encoded for the level (g * giant.size() - 1)
    std::vector<int32_t> baby;        // rotations hoisted inside the level (g of them)
    std::vector<int32_t> giant;       // each block's total rotation, i * giant_step (modulo N/2)
    int32_t giant_step;               // the one giant rotation (0 when the level has one block)
};

// One stage's encoded diagonals (extended basis Q*P at the stage's towers, evaluation form) and their
// common scaling factor; a caller may keep them on disk between bootstraps (tower_files.h).
struct StageDiagonals {
    std::vector<DCRTPoly> diagonals;
    double scaling_factor = 1.0;
};

class StreamedBootstrap {
public:
    // The same settings as CryptoContext::EvalBootstrapSetup (level budget, dim1, slots, correction
    // factor: 0 for OpenFHE's choice).
    StreamedBootstrap(const CryptoContext<DCRTPoly>& cc, std::vector<uint32_t> level_budget,
                      std::vector<uint32_t> dim1, uint32_t slots, uint32_t correction_factor);

    uint32_t Slots() const { return slots_; }
    uint32_t StageCount() const { return static_cast<uint32_t>(stages_.size()); }
    const FftStage& Stage(uint32_t k) const;
    // The nonzero rotations stage k needs keys for, sorted.
    std::vector<int32_t> StageRotations(uint32_t k) const;
    // Rotations SpecialKeys holds besides the conjugation and sparse-encapsulation keys: the partial sums
    // of a sparsely packed ciphertext.
    std::vector<int32_t> SpecialRotations() const;

    // Keys, made by the secret key's owner, stage keys at their stage's towers. For the special keys (made
    // by OpenFHE) the context's own automorphism-key table for the secret key's tag must hold none of the
    // indices (OpenFHE skips those it already has); the map is checked complete.
    std::shared_ptr<KeyMap> GenerateStageKeys(const PrivateKey<DCRTPoly>& sk, uint32_t k) const;
    std::shared_ptr<KeyMap> GenerateSpecialKeys(const PrivateKey<DCRTPoly>& sk) const;

    // Encodes stage k's diagonals (the server's business: about 1 GB for a CoeffsToSlots stage at N = 2^16).
    std::shared_ptr<StageDiagonals> EncodeStage(uint32_t k) const;

    // The bootstrap in four calls, keys passed explicitly:
    //   Begin (modulus raising, normalisation, partial sums), Stage for each CoeffsToSlots level,
    //   EvalMod (conjugation, the scaled sine, double-angle steps), Stage for each SlotsToCoeffs level,
    //   Finish (partial sum, correction).
    Ciphertext<DCRTPoly> Begin(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const;
    Ciphertext<DCRTPoly> ApplyStage(uint32_t k, const Ciphertext<DCRTPoly>& input, const KeyMap& keys,
                                    const StageDiagonals& diagonals) const;
    Ciphertext<DCRTPoly> EvalMod(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const;
    Ciphertext<DCRTPoly> Finish(const Ciphertext<DCRTPoly>& input, const KeyMap& special) const;

private:
    CryptoContext<DCRTPoly> cc_;
    uint32_t slots_;
    uint32_t correction_factor_;
    lbcrypto::ckks_boot_params encode_params_;
    lbcrypto::ckks_boot_params decode_params_;
    std::vector<FftStage> stages_;
    std::vector<double> sine_series_;  // Chebyshev coefficients of the scaled cosine EvalMod starts with
    // The FFT factor matrices (OpenFHE's CoeffEncodingCollapse / CoeffDecodingCollapse) by level: real
    // and imaginary coefficient halves (the imaginary ones for sparse packing only). Tens of MB.
    using Matrices = std::vector<std::vector<std::vector<std::complex<double>>>>;
    Matrices encode_, encode_imaginary_, decode_, decode_imaginary_;

    void AddStages(const lbcrypto::ckks_boot_params& params, bool coeffs_to_slots, uint32_t first_towers);
    Ciphertext<DCRTPoly> ReduceModulo(const Ciphertext<DCRTPoly>& input) const;
    Ciphertext<DCRTPoly> RotateExtended(const Ciphertext<DCRTPoly>& ct, int32_t amount, const KeyMap& keys) const;
};

}  // namespace resnet_fhe
