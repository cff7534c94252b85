// Key maps and encoded diagonals as raw RNS towers: what a server reads for every bootstrap stage.
//
// OpenFHE's binary serialization (cereal) writes each coefficient through its own call; reading a
// 2 GB stage that way took 1.6 s of CPU, on a core the bootstrap's arithmetic also wants (measured in
// the server's pipeline). Here a tower is its residues as one block of little-endian uint64 values, read
// into the tower's own buffer in one call, so reading costs about what copying the bytes from the page
// cache does. Layout (integers in the machine's byte order, little-endian on every supported platform):
//   header   "RFHETOWR", uint32 version (1), uint32 kind (1: key map, 2: stage diagonals)
//   poly     uint32 ring dimension n, uint32 towers, the towers' uint64 moduli, a uint8 per tower (0: an
//            empty tower, a placeholder OpenFHE keeps in keys made for fewer towers), then each non-empty
//            tower's n uint64 residues (evaluation form)
//   key map  uint64 keys; per key: uint32 automorphism index, key tag (uint32 length, bytes), uint32
//            digits, then per digit its b and a polys
//   diagonals  float64 scaling factor, uint64 diagonals, then the polys
// Moduli are checked against the crypto context that reads the file, which supplies the roots of unity.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "openfhe.h"

namespace resnet_fhe {

struct StageDiagonals;
using KeyMap = std::map<uint32_t, lbcrypto::EvalKey<lbcrypto::DCRTPoly>>;

// Each returns false when the file cannot be written; reads throw std::runtime_error naming the file
// and what is wrong with it (not this format, truncated, moduli of another context).
bool WriteKeyMapTowers(const std::string& path, const KeyMap& keys);
std::shared_ptr<KeyMap> ReadKeyMapTowers(const std::string& path, const lbcrypto::CryptoContext<lbcrypto::DCRTPoly>& cc);
bool WriteStageDiagonalsTowers(const std::string& path, const StageDiagonals& diagonals);
std::shared_ptr<StageDiagonals> ReadStageDiagonalsTowers(const std::string& path,
                                                         const lbcrypto::CryptoContext<lbcrypto::DCRTPoly>& cc);

}  // namespace resnet_fhe
