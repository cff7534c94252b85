// See tower_files.h.
#include "tower_files.h"

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "streamed_bootstrap.h"

namespace resnet_fhe {

using namespace lbcrypto;

namespace {

constexpr char kMagic[8] = {'R', 'F', 'H', 'E', 'T', 'O', 'W', 'R'};
constexpr uint32_t kVersion = 1;
enum class Kind : uint32_t { kKeyMap = 1, kStageDiagonals = 2 };

static_assert(sizeof(NativeInteger) == sizeof(uint64_t), "a native residue is one uint64");

template <typename T>
void put(std::ofstream& out, const T& value) {
    out.write(reinterpret_cast<const char*>(&value), sizeof(T));
}

void put_header(std::ofstream& out, Kind kind) {
    out.write(kMagic, sizeof(kMagic));
    put(out, kVersion);
    put(out, static_cast<uint32_t>(kind));
}

void put_poly(std::ofstream& out, const DCRTPoly& poly) {
    const uint32_t n = poly.GetRingDimension(), towers = poly.GetNumOfElements();
    put(out, n);
    put(out, towers);
    for (uint32_t i = 0; i < towers; ++i)
        put(out, poly.GetElementAtIndex(i).GetModulus().ConvertToInt<uint64_t>());
    for (uint32_t i = 0; i < towers; ++i)
        put(out, static_cast<uint8_t>(!poly.GetElementAtIndex(i).IsEmpty()));
    for (uint32_t i = 0; i < towers; ++i) {
        const auto& tower = poly.GetElementAtIndex(i);
        if (!tower.IsEmpty())
            out.write(reinterpret_cast<const char*>(&tower.GetValues()[0]), static_cast<std::streamsize>(n) * 8);
    }
}

// Reads one file, checking every step: the message names the file and says what is wrong.
class TowerReader {
public:
    TowerReader(const std::string& path, const CryptoContext<DCRTPoly>& cc, Kind kind) : path_(path), in_(path, std::ios::binary) {
        if (!in_)
            Fail("cannot be opened");
        char magic[sizeof(kMagic)];
        in_.read(magic, sizeof(magic));
        if (!in_ || std::memcmp(magic, kMagic, sizeof(kMagic)) != 0)
            Fail("is not a resnet-fhe tower file (a key store of an earlier version? make the keys again)");
        if (Get<uint32_t>() != kVersion)
            Fail("is a tower file of another version");
        if (Get<uint32_t>() != static_cast<uint32_t>(kind))
            Fail(kind == Kind::kKeyMap ? "holds no key map" : "holds no stage diagonals");
        const auto params = std::dynamic_pointer_cast<CryptoParametersRNS>(cc->GetCryptoParameters());
        order_ = cc->GetCyclotomicOrder();
        for (const auto& tower : params->GetParamsQP()->GetParams())
            roots_[tower->GetModulus().ConvertToInt<uint64_t>()] = tower->GetRootOfUnity();
    }

    template <typename T>
    T Get() {
        T value;
        in_.read(reinterpret_cast<char*>(&value), sizeof(T));
        if (!in_)
            Fail("is truncated");
        return value;
    }

    std::string GetString() {
        std::string text(Get<uint32_t>(), '\0');
        in_.read(text.data(), static_cast<std::streamsize>(text.size()));
        if (!in_)
            Fail("is truncated");
        return text;
    }

    DCRTPoly GetPoly() {
        const uint32_t n = Get<uint32_t>(), towers = Get<uint32_t>();
        if (n != order_ / 2 || towers == 0 || towers > roots_.size())
            Fail("holds a polynomial of another ring or basis than this context's");
        std::vector<uint64_t> moduli(towers);
        for (auto& modulus : moduli)
            modulus = Get<uint64_t>();
        std::vector<uint8_t> present(towers);
        for (auto& flag : present)
            flag = Get<uint8_t>();
        const auto params = Params(moduli);
        DCRTPoly poly(params, Format::EVALUATION, false);
        for (uint32_t i = 0; i < towers; ++i) {
            if (!present[i])
                continue;
            NativePoly tower(params->GetParams()[i], Format::EVALUATION, true);
            in_.read(reinterpret_cast<char*>(&tower[0]), static_cast<std::streamsize>(n) * 8);
            if (!in_)
                Fail("is truncated");
            poly.SetElementAtIndex(i, std::move(tower));
        }
        return poly;
    }

    void ExpectEnd() {
        if (in_.peek() != std::ifstream::traits_type::eof())
            Fail("has bytes after its content");
    }

    [[noreturn]] void Fail(const std::string& what) const {
        throw std::runtime_error(path_ + " " + what);
    }

private:
    // One params object per basis: a file's polys share one or two.
    std::shared_ptr<DCRTPoly::Params> Params(const std::vector<uint64_t>& moduli) {
        auto& cached = bases_[moduli];
        if (!cached) {
            std::vector<NativeInteger> q, roots;
            for (uint64_t modulus : moduli) {
                const auto root = roots_.find(modulus);
                if (root == roots_.end())
                    Fail("holds a tower of a modulus this context does not have (keys of another context?)");
                q.emplace_back(modulus);
                roots.push_back(root->second);
            }
            cached = std::make_shared<DCRTPoly::Params>(order_, q, roots);
        }
        return cached;
    }

    std::string path_;
    std::ifstream in_;
    uint32_t order_ = 0;
    std::map<uint64_t, NativeInteger> roots_;
    std::map<std::vector<uint64_t>, std::shared_ptr<DCRTPoly::Params>> bases_;
};

}  // namespace

bool WriteKeyMapTowers(const std::string& path, const KeyMap& keys) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    put_header(out, Kind::kKeyMap);
    put(out, static_cast<uint64_t>(keys.size()));
    for (const auto& [automorphism, key] : keys) {
        const auto& b = key->GetBVector();
        const auto& a = key->GetAVector();
        if (a.size() != b.size())
            throw std::invalid_argument("WriteKeyMapTowers: a key with unequal a and b parts");
        put(out, automorphism);
        put(out, static_cast<uint32_t>(key->GetKeyTag().size()));
        out.write(key->GetKeyTag().data(), static_cast<std::streamsize>(key->GetKeyTag().size()));
        put(out, static_cast<uint32_t>(b.size()));
        for (size_t d = 0; d < b.size(); ++d) {
            put_poly(out, b[d]);
            put_poly(out, a[d]);
        }
    }
    out.close();
    return static_cast<bool>(out);
}

std::shared_ptr<KeyMap> ReadKeyMapTowers(const std::string& path, const CryptoContext<DCRTPoly>& cc) {
    TowerReader in(path, cc, Kind::kKeyMap);
    auto keys = std::make_shared<KeyMap>();
    for (uint64_t count = in.Get<uint64_t>(); count > 0; --count) {
        const auto automorphism = in.Get<uint32_t>();
        const auto tag = in.GetString();
        const uint32_t digits = in.Get<uint32_t>();
        std::vector<DCRTPoly> b, a;
        for (uint32_t d = 0; d < digits; ++d) {
            b.push_back(in.GetPoly());
            a.push_back(in.GetPoly());
        }
        auto key = std::make_shared<EvalKeyRelinImpl<DCRTPoly>>(cc);
        key->SetKeyTag(tag);
        key->SetBVector(std::move(b));
        key->SetAVector(std::move(a));
        (*keys)[automorphism] = std::move(key);
    }
    in.ExpectEnd();
    return keys;
}

bool WriteStageDiagonalsTowers(const std::string& path, const StageDiagonals& diagonals) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    put_header(out, Kind::kStageDiagonals);
    put(out, diagonals.scaling_factor);
    put(out, static_cast<uint64_t>(diagonals.diagonals.size()));
    for (const auto& diagonal : diagonals.diagonals)
        put_poly(out, diagonal);
    out.close();
    return static_cast<bool>(out);
}

std::shared_ptr<StageDiagonals> ReadStageDiagonalsTowers(const std::string& path, const CryptoContext<DCRTPoly>& cc) {
    TowerReader in(path, cc, Kind::kStageDiagonals);
    auto result = std::make_shared<StageDiagonals>();
    result->scaling_factor = in.Get<double>();
    for (uint64_t count = in.Get<uint64_t>(); count > 0; --count)
        result->diagonals.push_back(in.GetPoly());
    in.ExpectEnd();
    return result;
}

}  // namespace resnet_fhe
