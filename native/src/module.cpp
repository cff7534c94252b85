// resnet_fhe._native: OpenFHE (built from source, static, by CMakeLists.txt) behind the subset of the
// openfhe-python interface that resnet_fhe.backends.openfhe_backend calls, under the same names, so the
// backend runs unchanged on either library and the tests compare them op for op.
//
// Why a second binding at all: the wheel exposes bootstrapping as one call that holds every key and
// precomputed transform for its whole duration; code of our own inside bootstrapping needs OpenFHE's C++
// API, and the extension is where it will live. OpenFHE's symbols stay inside this module (hidden
// visibility, --exclude-libs), so it loads beside the wheel in one process.
//
// Every type is registered py::module_local(): the wheel is a pybind11 module too, and binds the same C++
// types (lbcrypto::PKESchemeFeature, ...); global registrations of one type from two modules collide.
//
// Heavy calls release the GIL: the runtime's memory guard samples RSS from a Python thread meanwhile.

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fstream>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "ciphertext-ser.h"
#include "cryptocontext-ser.h"
#include "key/key-ser.h"
#include "openfhe.h"
#include "scheme/ckksrns/ckksrns-fhe.h"
#include "scheme/ckksrns/ckksrns-ser.h"
#include "key_sampling.h"
#include "streamed_bootstrap.h"
#include "tower_files.h"

namespace py = pybind11;
using namespace lbcrypto;

using Context = CryptoContextImpl<DCRTPoly>;
using ContextPtr = CryptoContext<DCRTPoly>;
using CiphertextT = CiphertextImpl<DCRTPoly>;
using Ct = Ciphertext<DCRTPoly>;
using Pt = Plaintext;
using KeyMap = std::map<uint32_t, EvalKey<DCRTPoly>>;
using Release = py::call_guard<py::gil_scoped_release>;

namespace {

// Opaque handles (pybind11's STL casters would copy vectors and maps into Python lists and dicts):
// a hoisted rotation's digit decomposition, and a key tag's automorphism keys.
struct RotationDigits {
    std::shared_ptr<std::vector<DCRTPoly>> digits;
};
struct AutomorphismKeys {
    std::shared_ptr<KeyMap> keys;
};

// OpenFHE reports misuse with OpenFHEException (a std::exception): pybind11 turns it into RuntimeError
// with OpenFHE's message, as the wheel does.

void bind_enums(py::module_& m) {
    py::enum_<PKESchemeFeature>(m, "PKESchemeFeature", py::module_local())
        .value("PKE", PKE).value("KEYSWITCH", KEYSWITCH).value("LEVELEDSHE", LEVELEDSHE)
        .value("ADVANCEDSHE", ADVANCEDSHE).value("FHE", FHE).export_values();
    py::enum_<ScalingTechnique>(m, "ScalingTechnique", py::module_local())
        .value("FIXEDMANUAL", FIXEDMANUAL).value("FIXEDAUTO", FIXEDAUTO).value("FLEXIBLEAUTO", FLEXIBLEAUTO)
        .value("FLEXIBLEAUTOEXT", FLEXIBLEAUTOEXT).export_values();
    py::enum_<KeySwitchTechnique>(m, "KeySwitchTechnique", py::module_local()).value("BV", BV).value("HYBRID", HYBRID).export_values();
    py::enum_<CKKSDataType>(m, "CKKSDataType", py::module_local()).value("REAL", REAL).value("COMPLEX", COMPLEX).export_values();
    py::enum_<SecretKeyDist>(m, "SecretKeyDist", py::module_local())
        .value("GAUSSIAN", GAUSSIAN).value("UNIFORM_TERNARY", UNIFORM_TERNARY)
        .value("SPARSE_TERNARY", SPARSE_TERNARY).value("SPARSE_ENCAPSULATED", SPARSE_ENCAPSULATED).export_values();
    py::enum_<SecurityLevel>(m, "SecurityLevel", py::module_local())
        .value("HEStd_128_classic", HEStd_128_classic).value("HEStd_192_classic", HEStd_192_classic)
        .value("HEStd_256_classic", HEStd_256_classic).value("HEStd_NotSet", HEStd_NotSet).export_values();
}

void bind_parameters(py::module_& m) {
    using Params = CCParams<CryptoContextCKKSRNS>;
    py::class_<Params>(m, "CCParamsCKKSRNS", py::module_local())
        .def(py::init<>())
        .def("SetCKKSDataType", &Params::SetCKKSDataType)
        .def("SetMultiplicativeDepth", &Params::SetMultiplicativeDepth)
        .def("SetScalingModSize", &Params::SetScalingModSize)
        .def("SetFirstModSize", &Params::SetFirstModSize)
        .def("SetNumLargeDigits", &Params::SetNumLargeDigits)
        .def("SetScalingTechnique", &Params::SetScalingTechnique)
        .def("SetKeySwitchTechnique", &Params::SetKeySwitchTechnique)
        .def("SetSecretKeyDist", &Params::SetSecretKeyDist)
        .def("SetSecurityLevel", &Params::SetSecurityLevel)
        .def("SetRingDim", &Params::SetRingDim)
        .def("SetBatchSize", &Params::SetBatchSize);
    m.def("GenCryptoContext", [](const Params& params) { return GenCryptoContext(params); }, Release());
}

void bind_objects(py::module_& m) {
    py::class_<CiphertextT, Ct>(m, "Ciphertext", py::module_local())
        .def("GetLevel", &CiphertextT::GetLevel)
        .def("GetNoiseScaleDeg", &CiphertextT::GetNoiseScaleDeg)
        .def("GetSlots", &CiphertextT::GetSlots)
        .def("SetSlots", &CiphertextT::SetSlots)
        .def("GetKeyTag", &CiphertextT::GetKeyTag);
    py::class_<PlaintextImpl, Pt>(m, "Plaintext", py::module_local())
        .def("SetLength", &PlaintextImpl::SetLength)
        .def("GetLevel", &PlaintextImpl::GetLevel)
        .def("GetRealPackedValue", &PlaintextImpl::GetRealPackedValue)
        .def("GetCKKSPackedValue", &PlaintextImpl::GetCKKSPackedValue);
    py::class_<PublicKeyImpl<DCRTPoly>, PublicKey<DCRTPoly>>(m, "PublicKey", py::module_local())
        .def("GetKeyTag", &PublicKeyImpl<DCRTPoly>::GetKeyTag);
    py::class_<PrivateKeyImpl<DCRTPoly>, PrivateKey<DCRTPoly>>(m, "PrivateKey", py::module_local())
        .def("GetKeyTag", &PrivateKeyImpl<DCRTPoly>::GetKeyTag);
    py::class_<KeyPair<DCRTPoly>>(m, "KeyPair", py::module_local())
        .def_readonly("publicKey", &KeyPair<DCRTPoly>::publicKey)
        .def_readonly("secretKey", &KeyPair<DCRTPoly>::secretKey);
    py::class_<RotationDigits>(m, "RotationDigits", py::module_local());
    py::class_<AutomorphismKeys>(m, "AutomorphismKeyMap", py::module_local())
        .def("__len__", [](const AutomorphismKeys& self) { return self.keys->size(); })
        .def("indices", [](const AutomorphismKeys& self) {
            std::vector<uint32_t> indices;
            for (const auto& entry : *self.keys)
                indices.push_back(entry.first);
            return indices;
        });
}

// A rotation key made for fewer towers (RotationKeysAtTowers) must never meet a ciphertext with more:
// OpenFHE would read the towers it lacks. Checked before each key switch by an automorphism key.
void check_key_serves(const KeyMap& keys, uint32_t automorphism, const Ct& ct) {
    auto found = keys.find(automorphism);
    if (found == keys.end())
        return;  // OpenFHE reports the missing key itself
    const auto params = std::dynamic_pointer_cast<CryptoParametersCKKSRNS>(ct->GetCryptoParameters());
    const uint32_t towers = ct->GetElements()[0].GetNumOfElements();
    if (!resnet_fhe::KeyServesTowers(found->second, towers, *params))
        throw py::value_error("the evaluation key for automorphism " + std::to_string(automorphism) +
                              " was made for fewer RNS towers than this ciphertext's " + std::to_string(towers) +
                              " (the key store's plan and the ciphertext's levels disagree)");
}

void check_rotation_key(const Context& context, const Ct& ct, int32_t index) {
    const auto& keys = Context::GetEvalAutomorphismKeyMap(ct->GetKeyTag());
    check_key_serves(keys, context.FindAutomorphismIndex(static_cast<uint32_t>(index)), ct);
}

// Values arrive as numpy arrays (tens of thousands of slots): read as one buffer, not element by element;
// any sequence numpy reads is taken too. Complex values encode complex slots (a COMPLEX context).
Pt make_packed_plaintext(const Context& self, const py::object& given, size_t scale_degree, uint32_t level,
                         const py::object&, uint32_t slots) {
    py::array values = py::module_::import("numpy").attr("asarray")(given);
    if (values.dtype().kind() == 'c') {
        auto array = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>::ensure(values);
        std::vector<std::complex<double>> data(array.data(), array.data() + array.size());
        py::gil_scoped_release release;
        return self.MakeCKKSPackedPlaintext(data, scale_degree, level, nullptr, slots);
    }
    auto array = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(values);
    if (!array)
        throw py::type_error("MakeCKKSPackedPlaintext: values must be an array of real or complex numbers");
    std::vector<double> data(array.data(), array.data() + array.size());
    py::gil_scoped_release release;
    return self.MakeCKKSPackedPlaintext(data, scale_degree, level, nullptr, slots);
}

// Files in OpenFHE's binary format (the only one the runtime writes). The functions keep the wheel's names
// and arguments, and its (object, ok) returns; a file of one library does not load in the other (their
// OpenFHE versions differ), which is why a key store records the library that made it.
enum class SerialFormat { BINARY };

template <typename T>
bool serialize_object(const std::string& path, const T& object, SerialFormat) {
    py::gil_scoped_release release;
    return Serial::SerializeToFile(path, object, SerType::BINARY);
}

template <typename T>
std::pair<T, bool> deserialize_object(const std::string& path, SerialFormat) {
    T object;
    bool ok;
    {
        py::gil_scoped_release release;
        ok = Serial::DeserializeFromFile(path, object, SerType::BINARY);
    }
    return {object, ok};
}

// The key caches (relinearisation and automorphism keys) through a file: what OpenFHE's static
// Serialize/DeserializeEval*Key functions do on streams.
template <typename Write>
bool write_file(const std::string& path, Write write) {
    py::gil_scoped_release release;
    std::ofstream stream(path, std::ios::out | std::ios::binary);
    return stream.is_open() && write(stream) && stream.good();
}

template <typename Read>
bool read_file(const std::string& path, Read read) {
    py::gil_scoped_release release;
    std::ifstream stream(path, std::ios::in | std::ios::binary);
    return stream.is_open() && read(stream);
}

void bind_serialization(py::module_& m) {
    py::enum_<SerialFormat>(m, "SerialFormat", py::module_local()).value("BINARY", SerialFormat::BINARY).export_values();
    m.def("SerializeToFile", &serialize_object<ContextPtr>);
    m.def("SerializeToFile", &serialize_object<PublicKey<DCRTPoly>>);
    m.def("SerializeToFile", &serialize_object<PrivateKey<DCRTPoly>>);
    m.def("SerializeToFile", &serialize_object<Ct>);
    m.def("DeserializeCryptoContext", &deserialize_object<ContextPtr>);
    m.def("DeserializePublicKey", &deserialize_object<PublicKey<DCRTPoly>>);
    m.def("DeserializePrivateKey", &deserialize_object<PrivateKey<DCRTPoly>>);
    m.def("DeserializeCiphertext", &deserialize_object<Ct>);
    m.def("ClearEvalMultKeys", []() { Context::ClearEvalMultKeys(); });
    // Bootstrap keys of one slot count: the key tag's automorphism keys, which the runtime's keygen
    // writes right after EvalBootstrapKeyGen on an emptied cache (so they are exactly those keys), and
    // the server reads back into the cache. `slots` is checked to exist in the context's setup by
    // EvalBootstrap itself; it is kept for the wheel's signature.
    m.def("SerializeEvalBootstrapKey", [](const std::string& path, SerialFormat, const ContextPtr&,
                                          const std::string& tag, uint32_t) {
        if (Context::GetExistingEvalAutomorphismKeyIndices(tag).empty())
            throw py::value_error("SerializeEvalBootstrapKey: no automorphism keys for key tag " + tag);
        return write_file(path, [&](std::ofstream& out) {
            return Context::SerializeEvalAutomorphismKey(out, SerType::BINARY, tag);
        });
    });
    m.def("DeserializeEvalBootstrapKey", [](const std::string& path, SerialFormat, const ContextPtr&,
                                            const std::string& tag, uint32_t) {
        bool ok = read_file(path, [](std::ifstream& in) {
            return Context::DeserializeEvalAutomorphismKey(in, SerType::BINARY);
        });
        return ok && !Context::GetExistingEvalAutomorphismKeyIndices(tag).empty();
    });
}

void bind_context(py::module_& m) {
    py::class_<Context, ContextPtr> cc(m, "CryptoContext", py::module_local());
    cc.def("Enable", [](Context& self, PKESchemeFeature feature) { self.Enable(feature); })
        .def("GetRingDimension", &Context::GetRingDimension)
        .def("GetCyclotomicOrder", &Context::GetCyclotomicOrder)
        .def("GetBootstrapDepth", [](const Context&, const std::vector<uint32_t>& budget, SecretKeyDist dist) {
            return FHECKKSRNS::GetBootstrapDepth(budget, dist);
        })
        // keys
        .def("KeyGen", &Context::KeyGen, Release())
        .def("EvalMultKeyGen", &Context::EvalMultKeyGen, Release())
        .def("EvalRotateKeyGen", [](Context& self, const PrivateKey<DCRTPoly>& sk, const std::vector<int32_t>& indices) {
            self.EvalRotateKeyGen(sk, indices);
        }, Release())
        .def("EvalBootstrapSetup", [](Context& self, const std::vector<uint32_t>& budget, const std::vector<uint32_t>& dim1,
                                      uint32_t slots, uint32_t correction, bool precompute) {
            self.EvalBootstrapSetup(budget, dim1, slots, correction, precompute);
        }, py::arg("level_budget"), py::arg("dim1"), py::arg("slots"), py::arg("correction_factor") = 0,
           py::arg("precompute") = true, Release())
        .def("EvalBootstrapKeyGen", &Context::EvalBootstrapKeyGen, Release())
        .def("SerializeEvalMultKey", [](const Context&, const std::string& path, SerialFormat) {
            return write_file(path, [](std::ofstream& out) { return Context::SerializeEvalMultKey(out, SerType::BINARY); });
        })
        .def("DeserializeEvalMultKey", [](const Context&, const std::string& path, SerialFormat) {
            return read_file(path, [](std::ifstream& in) { return Context::DeserializeEvalMultKey(in, SerType::BINARY); });
        })
        .def("SerializeEvalAutomorphismKey", [](const Context&, const std::string& path, SerialFormat) {
            return write_file(path, [](std::ofstream& out) {
                return Context::SerializeEvalAutomorphismKey(out, SerType::BINARY);
            });
        })
        .def("DeserializeEvalAutomorphismKey", [](const Context&, const std::string& path, SerialFormat) {
            return read_file(path, [](std::ifstream& in) {
                return Context::DeserializeEvalAutomorphismKey(in, SerType::BINARY);
            });
        })
        .def("ClearEvalAutomorphismKeys", [](const Context&) { Context::ClearEvalAutomorphismKeys(); })
        // A copy of the map goes in (its keys are shared, not copied): for a tag that holds no keys yet,
        // OpenFHE keeps the map it is given, and keys loaded later would land in the caller's map.
        .def("InsertEvalAutomorphismKey", [](const Context&, const AutomorphismKeys& keys, const std::string& tag) {
            Context::InsertEvalAutomorphismKey(std::make_shared<KeyMap>(*keys.keys), tag);
        })
        .def("GetExistingEvalAutomorphismKeyIndices", [](const Context&, const std::string& tag) {
            auto indices = Context::GetExistingEvalAutomorphismKeyIndices(tag);
            return std::vector<uint32_t>(indices.begin(), indices.end());
        })
        .def("FindAutomorphismIndex", [](const Context& self, int32_t index) {  // signed, as EvalFastRotation
            return self.FindAutomorphismIndex(static_cast<uint32_t>(index));
        })
        .def("GetEvalAutomorphismKeyMap", [](const Context&, const std::string& tag) {
            // A copy of the map (its keys are shared): the module never hands out OpenFHE's own table.
            return AutomorphismKeys{std::make_shared<KeyMap>(Context::GetEvalAutomorphismKeyMap(tag))};
        })
        // encoding and encryption
        .def("MakeCKKSPackedPlaintext", &make_packed_plaintext, py::arg("values"), py::arg("scale_degree") = 1,
             py::arg("level") = 0, py::arg("params") = py::none(), py::arg("slots") = 0)
        .def("Encrypt", [](const Context& self, const PublicKey<DCRTPoly>& pk, const Pt& pt) {
            return self.Encrypt(pk, pt);
        }, Release())
        .def("Decrypt", [](Context& self, const Ct& ct, const PrivateKey<DCRTPoly>& sk) {
            Pt result;
            self.Decrypt(ct, sk, &result);
            return result;
        }, Release())
        // arithmetic
        .def("EvalAdd", [](const Context& self, const Ct& a, const Ct& b) { return self.EvalAdd(a, b); }, Release())
        .def("EvalAdd", [](const Context& self, const Ct& a, double b) { return self.EvalAdd(a, b); }, Release())
        .def("EvalAdd", [](const Context& self, const Ct& a, Pt b) { return self.EvalAdd(a, b); }, Release())
        .def("EvalAddInPlace", [](const Context& self, Ct& a, const Ct& b) { self.EvalAddInPlace(a, b); }, Release())
        .def("EvalSub", [](const Context& self, const Ct& a, const Ct& b) { return self.EvalSub(a, b); }, Release())
        .def("EvalSub", [](const Context& self, const Ct& a, double b) { return self.EvalSub(a, b); }, Release())
        .def("EvalNegate", [](const Context& self, const Ct& a) { return self.EvalNegate(a); }, Release())
        .def("EvalMult", [](const Context& self, const Ct& a, const Ct& b) { return self.EvalMult(a, b); }, Release())
        .def("EvalMult", [](const Context& self, const Ct& a, double b) { return self.EvalMult(a, b); }, Release())
        .def("EvalMult", [](const Context& self, const Ct& a, const Pt& b) { return self.EvalMult(a, b); }, Release())
        .def("EvalMultMutable", [](const Context& self, Ct& a, Pt& b) { return self.EvalMultMutable(a, b); }, Release())
        .def("EvalSquare", [](const Context& self, const Ct& a) { return self.EvalSquare(a); }, Release())
        .def("EvalLinearWSum", [](const Context& self, const std::vector<Ct>& cts, const std::vector<double>& weights) {
            std::vector<ReadOnlyCiphertext<DCRTPoly>> inputs(cts.begin(), cts.end());
            return self.EvalLinearWSum(inputs, weights);
        }, Release())
        .def("Compress", [](const Context& self, const Ct& ct, uint32_t towers, size_t scale_degree) {
            return self.Compress(ct, towers, scale_degree);
        }, py::arg("ciphertext"), py::arg("towers_left") = 1, py::arg("noise_scale_degree") = 1, Release())
        .def("EvalChebyshevSeries", [](const Context& self, const Ct& ct, const std::vector<double>& coefficients,
                                       double a, double b) { return self.EvalChebyshevSeries(ct, coefficients, a, b); },
             Release())
        // rotations
        .def("EvalRotate", [](const Context& self, const Ct& ct, int32_t index) {
            check_rotation_key(self, ct, index);
            return self.EvalRotate(ct, index);
        }, Release())
        .def("EvalFastRotationPrecompute", [](const Context& self, const Ct& ct) {
            return RotationDigits{self.EvalFastRotationPrecompute(ct)};
        }, Release())
        // A negative index rotates right, as in EvalRotate: OpenFHE takes it as uint32_t and maps it back
        // to the signed automorphism (two's complement), so it is passed through unchanged.
        .def("EvalFastRotation", [](const Context& self, const Ct& ct, int32_t index, uint32_t m,
                                    const RotationDigits& digits) {
            check_rotation_key(self, ct, index);
            return self.EvalFastRotation(ct, static_cast<uint32_t>(index), m, digits.digits);
        }, Release())
        .def("EvalAutomorphism", [](const Context& self, const Ct& ct, uint32_t index, const AutomorphismKeys& keys) {
            check_key_serves(*keys.keys, index, ct);
            return self.EvalAutomorphism(ct, index, *keys.keys);
        }, Release())
        // bootstrapping (OpenFHE's, for now: every key and precomputed transform resident for the call)
        .def("EvalBootstrap", [](const Context& self, const Ct& ct) { return self.EvalBootstrap(ct); }, Release());
}

// A ChaCha20 stream from a 32-byte key and 12-byte nonce, read little-endian as RFC 8439 does.
resnet_fhe::ChaCha20Stream chacha20_stream(const py::bytes& key, const py::bytes& nonce, uint32_t counter) {
    const std::string key_bytes = key, nonce_bytes = nonce;
    if (key_bytes.size() != 32 || nonce_bytes.size() != 12)
        throw py::value_error("ChaCha20 takes a 32-byte key and a 12-byte nonce");
    auto word = [](const std::string& bytes, size_t i) {
        uint32_t value = 0;
        for (int b = 3; b >= 0; --b)
            value = (value << 8) | static_cast<uint8_t>(bytes[4 * i + b]);
        return value;
    };
    std::array<uint32_t, 8> key_words;
    std::array<uint32_t, 3> nonce_words;
    for (size_t i = 0; i < 8; ++i)
        key_words[i] = word(key_bytes, i);
    for (size_t i = 0; i < 3; ++i)
        nonce_words[i] = word(nonce_bytes, i);
    return resnet_fhe::ChaCha20Stream(key_words, nonce_words, counter);
}

// resnet-fhe's own bootstrap (streamed_bootstrap.h): Python loads each stage's keys (a key-map file)
// just before the stage and drops them after it.
void bind_streamed_bootstrap(py::module_& m) {
    using resnet_fhe::StageDiagonals;
    using resnet_fhe::StreamedBootstrap;
    py::class_<StageDiagonals, std::shared_ptr<StageDiagonals>>(m, "StageDiagonals", py::module_local())
        .def("__len__", [](const StageDiagonals& self) { return self.diagonals.size(); });
    // Raw tower files (tower_files.h): read for every bootstrap, so read at the speed of copying bytes.
    m.def("SerializeStageDiagonals", &resnet_fhe::WriteStageDiagonalsTowers, Release());
    m.def("DeserializeStageDiagonals", &resnet_fhe::ReadStageDiagonalsTowers, py::arg("path"), py::arg("context"),
          Release());
    py::class_<StreamedBootstrap>(m, "StreamedBootstrap", py::module_local())
        .def(py::init<const ContextPtr&, std::vector<uint32_t>, std::vector<uint32_t>, uint32_t, uint32_t>(),
             py::arg("context"), py::arg("level_budget"), py::arg("dim1"), py::arg("slots"),
             py::arg("correction_factor") = 0, Release())
        .def_property_readonly("slots", &StreamedBootstrap::Slots)
        .def_property_readonly("stage_count", &StreamedBootstrap::StageCount)
        .def("IsCoeffsToSlots", [](const StreamedBootstrap& self, uint32_t k) { return self.Stage(k).coeffs_to_slots; })
        .def("StageRotations", &StreamedBootstrap::StageRotations)
        .def("SpecialRotations", &StreamedBootstrap::SpecialRotations)
        .def("GenerateStageKeys", [](const StreamedBootstrap& self, const PrivateKey<DCRTPoly>& sk, uint32_t k) {
            return AutomorphismKeys{self.GenerateStageKeys(sk, k)};
        }, Release())
        .def("GenerateSpecialKeys", [](const StreamedBootstrap& self, const PrivateKey<DCRTPoly>& sk) {
            return AutomorphismKeys{self.GenerateSpecialKeys(sk)};
        }, Release())
        .def("EncodeStage", &StreamedBootstrap::EncodeStage, Release())
        .def("Begin", [](const StreamedBootstrap& self, const Ct& ct, const AutomorphismKeys& special) {
            return self.Begin(ct, *special.keys);
        }, Release())
        .def("ApplyStage", [](const StreamedBootstrap& self, uint32_t k, const Ct& ct, const AutomorphismKeys& keys,
                              const StageDiagonals& diagonals) { return self.ApplyStage(k, ct, *keys.keys, diagonals); },
             Release())
        .def("EvalMod", [](const StreamedBootstrap& self, const Ct& ct, const AutomorphismKeys& special) {
            return self.EvalMod(ct, *special.keys);
        }, Release())
        .def("Finish", [](const StreamedBootstrap& self, const Ct& ct, const AutomorphismKeys& special) {
            return self.Finish(ct, *special.keys);
        }, Release());
    // Rotation keys made for the levels that use them (streamed_bootstrap.h); not in the wheel.
    m.def("RotationKeysAtTowers", [](const PrivateKey<DCRTPoly>& sk, const std::vector<int32_t>& rotations,
                                     uint32_t towers) {
        return AutomorphismKeys{resnet_fhe::RotationKeysAtTowers(sk, rotations, towers)};
    }, py::arg("secret_key"), py::arg("rotations"), py::arg("towers"), Release());
    // A key map as one raw tower file (tower_files.h).
    m.def("SerializeKeyMap", [](const std::string& path, const AutomorphismKeys& keys) {
        return resnet_fhe::WriteKeyMapTowers(path, *keys.keys);
    }, Release());
    m.def("DeserializeKeyMap", [](const std::string& path, const ContextPtr& context) {
        return AutomorphismKeys{resnet_fhe::ReadKeyMapTowers(path, context)};
    }, py::arg("path"), py::arg("context"), Release());
    // The keygen's uniform sampling (key_sampling.h), exposed for its tests.
    m.def("ChaCha20Keystream", [](const py::bytes& key, const py::bytes& nonce, uint32_t counter, size_t size) {
        auto stream = chacha20_stream(key, nonce, counter);
        std::string out(size, '\0');
        for (size_t i = 0; i < size; i += 4) {
            const uint32_t word = stream.NextWord();
            for (size_t b = 0; b < 4 && i + b < size; ++b)
                out[i + b] = static_cast<char>(word >> (8 * b));
        }
        return py::bytes(out);
    }, py::arg("key"), py::arg("nonce"), py::arg("counter"), py::arg("size"));
    m.def("UniformResidues", [](uint64_t modulus, size_t count, const py::bytes& key) {
        if (modulus < 2)
            throw py::value_error("UniformResidues: the modulus must be at least 2");
        auto stream = chacha20_stream(key, py::bytes(std::string(12, '\0')), 0);
        py::array_t<uint64_t> out(count);
        auto values = out.mutable_unchecked<1>();
        for (size_t i = 0; i < count; ++i)
            values(i) = resnet_fhe::UniformResidue(modulus, stream);
        return out;
    }, py::arg("modulus"), py::arg("count"), py::arg("key"));
}

// glibc serves each allocation above its mmap threshold (128 KiB at first) with a fresh mmap, and a
// 65,536-coefficient RNS tower is 512 KiB: every ciphertext temporary then costs page faults on first
// touch and a munmap on free. With mmap off and automatic trimming off, freed towers stay in the heap and
// are reused at once: on the default preset this alone took one streamed bootstrap (measured alone) from
// 35 s to 24 s (bench/results/native-2026-12-01b/). OpenFHE 1.6 sets the same two options when its
// library loads; 1.5.1 does not. The heap is still returned to
// the system where the runtime asks for it (resnet_fhe.runtime.heap.release_freed_memory, malloc_trim).
void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)  // other C libraries (macOS) allocate their own way
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1);
#endif
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    keep_freed_memory_for_reuse();
    m.doc() = "OpenFHE built from source for resnet-fhe (see native/src/module.cpp)";
    m.attr("OPENFHE_VERSION") = GetOPENFHEVersion();
    bind_enums(m);
    bind_parameters(m);
    bind_objects(m);
    bind_serialization(m);
    bind_context(m);
    bind_streamed_bootstrap(m);
}
