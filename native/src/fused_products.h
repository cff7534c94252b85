// Fused RNS products for the streamed bootstrap's linear transforms: sums of products of DCRTPolys in
// evaluation form, accumulated in 128 bits and reduced once per coefficient. DCRTPoly's operators reduce
// every product and allocate a temporary for each; in a baby-step giant-step transform (diagonal
// products, key-switch inner products) those temporaries and reductions were a third of the time.
#pragma once

#include <cstdint>
#include <vector>

#include "openfhe.h"

namespace resnet_fhe {

// sum over t of left[t] * right[t], tower by tower (all in one basis).
lbcrypto::DCRTPoly MultiplyAccumulate(const std::vector<const lbcrypto::DCRTPoly*>& left,
                                      const std::vector<const lbcrypto::DCRTPoly*>& right);

// The hybrid key switch of decomposed digits (in the extended basis Q_l*P, evaluation form) with `key`,
// `addend` (towers of the first result element's first towers, e.g. P * c0 in Q_l; may be null) added to
// the first element, then the automorphism `automorphism` applied to both: a hoisted rotation that stays in
// Q_l*P. The key's P towers may sit above Q_l's (OpenFHE's layout of keys for the full Q).
std::vector<lbcrypto::DCRTPoly> KeySwitchAutomorphism(const std::vector<lbcrypto::DCRTPoly>& digits,
                                                      const lbcrypto::EvalKey<lbcrypto::DCRTPoly>& key,
                                                      const lbcrypto::DCRTPoly* addend, uint32_t automorphism);

}  // namespace resnet_fhe
