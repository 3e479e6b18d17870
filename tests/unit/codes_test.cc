#include "codes/codes.h"

#include <doctest/doctest.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "challenges/challenge_service.h"
#include "codes/random.h"
#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::FakeRandom;
using sidecar::testing::InitSodium;
using sidecar::testing::TestMasterKey;

namespace {

std::string AsText(const Bytes& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// Counts, for each position, how often each digit appeared over `draws` codes.
std::vector<std::array<int, 10>> DigitCounts(int length, int draws, int* leading_zeros) {
  SodiumRandom random;
  std::vector<std::array<int, 10>> counts(static_cast<std::size_t>(length));
  for (auto& position : counts)
    position.fill(0);
  *leading_zeros = 0;
  for (int i = 0; i < draws; ++i) {
    std::string code = GenerateCode(length, random);
    REQUIRE(IsWellFormedCode(code, length));
    if (code[0] == '0') ++*leading_zeros;
    for (int p = 0; p < length; ++p)
      ++counts[static_cast<std::size_t>(p)][code[p] - '0'];
  }
  return counts;
}

}  // namespace

TEST_SUITE("codes") {
  TEST_CASE("GenerateCode: every digit position is uniform and ~10% of codes start with 0") {
    InitSodium();
    constexpr int kDraws = 20'000;
    // Each count is Binomial(20000, 0.1): mean 2000, standard deviation ~42. 250 is ~6 sigma,
    // so a correct generator essentially never fails, while a biased one (say, no leading
    // zeros, or digits 0-5 favoured by a modulo bias) fails at once.
    constexpr int kExpected = kDraws / 10;
    constexpr int kTolerance = 250;

    for (int length : {6, 10}) {
      CAPTURE(length);
      int leading_zeros = 0;
      auto counts = DigitCounts(length, kDraws, &leading_zeros);

      for (int p = 0; p < length; ++p) {
        for (int d = 0; d < 10; ++d) {
          CAPTURE(p);
          CAPTURE(d);
          CHECK(counts[static_cast<std::size_t>(p)][static_cast<std::size_t>(d)] >
                kExpected - kTolerance);
          CHECK(counts[static_cast<std::size_t>(p)][static_cast<std::size_t>(d)] <
                kExpected + kTolerance);
        }
      }

      double share = static_cast<double>(leading_zeros) / kDraws;
      CHECK(share > 0.0875);
      CHECK(share < 0.1125);
    }
  }

  TEST_CASE("GenerateCode: lengths 6 to 10 give exactly that many ASCII digits") {
    InitSodium();
    SodiumRandom random;

    for (int length = kMinCodeLength; length <= kMaxCodeLength; ++length) {
      for (int i = 0; i < 500; ++i) {
        std::string code = GenerateCode(length, random);
        REQUIRE(code.size() == static_cast<std::size_t>(length));
        REQUIRE(IsWellFormedCode(code, length));
      }
    }
  }

  TEST_CASE("GenerateCode: FakeRandom values come out as zero-padded strings") {
    FakeRandom random;

    random.Script({42});
    CHECK(GenerateCode(6, random) == "000042");

    random.Script({0});
    CHECK(GenerateCode(6, random) == "000000");

    random.Script({999'999});
    CHECK(GenerateCode(6, random) == "999999");

    random.Script({123});
    CHECK(GenerateCode(8, random) == "00000123");
  }

  TEST_CASE("GenerateCode: draws once over the whole range, 10 digits in two chunks") {
    FakeRandom six;
    (void)GenerateCode(6, six);
    CHECK(six.bounds() == std::vector<std::uint32_t>{1'000'000});

    FakeRandom nine;
    (void)GenerateCode(9, nine);
    CHECK(nine.bounds() == std::vector<std::uint32_t>{1'000'000'000});

    FakeRandom ten;
    ten.Script({123'456'789, 5});
    CHECK(GenerateCode(10, ten) == "1234567895");
    CHECK(ten.bounds() == std::vector<std::uint32_t>{1'000'000'000, 10});

    FakeRandom padded;
    padded.Script({7, 3});
    CHECK(GenerateCode(10, padded) == "0000000073");
  }

  TEST_CASE("IsWellFormedCode accepts exactly `length` ASCII digits") {
    CHECK(IsWellFormedCode("012345", 6));
    CHECK(IsWellFormedCode("0123456789", 10));

    CHECK_FALSE(IsWellFormedCode("12345", 6));
    CHECK_FALSE(IsWellFormedCode("0123456", 6));
    CHECK_FALSE(IsWellFormedCode(" 012345", 6));
    CHECK_FALSE(IsWellFormedCode("012345 ", 6));
    CHECK_FALSE(IsWellFormedCode("012345\n", 6));
    CHECK_FALSE(IsWellFormedCode("01234a", 6));
    CHECK_FALSE(IsWellFormedCode("-12345", 6));
    CHECK_FALSE(IsWellFormedCode("+12345", 6));
    CHECK_FALSE(IsWellFormedCode("", 6));
    CHECK_FALSE(IsWellFormedCode(std::string_view("01234\0", 6), 6));
    // Full-width digits: six characters, eighteen bytes, none of them ASCII digits.
    CHECK_FALSE(
        IsWellFormedCode("\xef\xbc\x90\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"
                         "\xef\xbc\x95",
                         6));
    // Arabic-Indic digits, two bytes each: "٠١٢" is six bytes.
    CHECK_FALSE(IsWellFormedCode("\xd9\xa0\xd9\xa1\xd9\xa2", 6));
  }

  TEST_CASE("CodeKeys derives distinct hash and seal keys") {
    InitSodium();
    CodeKeys keys(TestMasterKey());
    auto master = TestMasterKey();

    CHECK(std::memcmp(keys.hash_key(), keys.seal_key(), 32) != 0);
    CHECK(std::memcmp(keys.hash_key(), master.data(), 32) != 0);
    CHECK(std::memcmp(keys.seal_key(), master.data(), 32) != 0);
  }

  TEST_CASE("HashCode is deterministic and depends on every input") {
    InitSodium();
    CodeKeys keys(TestMasterKey(1));
    CodeKeys other_keys(TestMasterKey(2));
    Bytes base = HashCode(keys, "ch_one", "alice", "123456");

    CHECK(base.size() == crypto_generichash_BYTES);
    CHECK(HashCode(keys, "ch_one", "alice", "123456") == base);

    CHECK(HashCode(keys, "ch_two", "alice", "123456") != base);
    CHECK(HashCode(keys, "ch_one", "bob", "123456") != base);
    CHECK(HashCode(keys, "ch_one", "alice", "123457") != base);
    CHECK(HashCode(other_keys, "ch_one", "alice", "123456") != base);
  }

  TEST_CASE("HashCode length-prefixes its parts so shifted boundaries never collide") {
    InitSodium();
    CodeKeys keys(TestMasterKey());

    CHECK(HashCode(keys, "ab", "c", "123456") != HashCode(keys, "a", "bc", "123456"));
    CHECK(HashCode(keys, "ch_x", "alice1", "23456") != HashCode(keys, "ch_x", "alice", "123456"));
    CHECK(HashCode(keys, "", "alice", "123456") != HashCode(keys, "alice", "", "123456"));
  }

  TEST_CASE("CodeMatches is true only for the right, well-formed code") {
    InitSodium();
    CodeKeys keys(TestMasterKey());
    Bytes stored = HashCode(keys, "ch_one", "alice", "012345");

    CHECK(CodeMatches(keys, "ch_one", "alice", "012345", 6, stored));

    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "012346", 6, stored));
    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "12345", 6, stored));
    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "012345 ", 6, stored));
    CHECK_FALSE(CodeMatches(keys, "ch_one", "bob", "012345", 6, stored));
    CHECK_FALSE(CodeMatches(keys, "ch_two", "alice", "012345", 6, stored));
    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "012345", 7, stored));

    Bytes truncated(stored.begin(), stored.end() - 1);
    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "012345", 6, truncated));
    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "012345", 6, Bytes{}));
  }

  TEST_CASE("CodeMatches refuses a malformed candidate even when its hash matches") {
    InitSodium();
    CodeKeys keys(TestMasterKey());
    // A hash made (wrongly) from a five-digit code must not let "12345" in for length 6.
    Bytes stored = HashCode(keys, "ch_one", "alice", "12345");

    CHECK_FALSE(CodeMatches(keys, "ch_one", "alice", "12345", 6, stored));
  }

  TEST_CASE("SealCode and UnsealCode round trip, with a fresh nonce each time") {
    InitSodium();
    CodeKeys keys(TestMasterKey());
    SodiumRandom random;

    Bytes sealed = SealCode(keys, "012345", random);
    Result<std::string> opened = UnsealCode(keys, sealed);
    REQUIRE(opened.ok());
    CHECK(*opened == "012345");

    CHECK(sealed.size() == crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 6);
    CHECK(SealCode(keys, "012345", random) != sealed);

    Bytes ten = SealCode(keys, "0000000073", random);
    REQUIRE(UnsealCode(keys, ten).ok());
    CHECK(*UnsealCode(keys, ten) == "0000000073");
  }

  TEST_CASE("sealed bytes do not hold the code in clear") {
    InitSodium();
    CodeKeys keys(TestMasterKey());
    SodiumRandom random;

    for (const char* code : {"123456", "000000", "9876543210"}) {
      CAPTURE(code);
      std::string sealed = AsText(SealCode(keys, code, random));
      CHECK(sealed.find(code) == std::string::npos);
    }
  }

  TEST_CASE("UnsealCode fails with unseal_failed when tampered, truncated or under another key") {
    InitSodium();
    CodeKeys keys(TestMasterKey(1));
    CodeKeys other_keys(TestMasterKey(2));
    SodiumRandom random;
    Bytes sealed = SealCode(keys, "123456", random);

    SUBCASE("any flipped byte: nonce, MAC or ciphertext") {
      for (std::size_t i = 0; i < sealed.size(); ++i) {
        CAPTURE(i);
        Bytes tampered = sealed;
        tampered[i] ^= 0x01;
        Result<std::string> opened = UnsealCode(keys, tampered);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().code == "unseal_failed");
      }
    }
    SUBCASE("truncated by one byte") {
      Bytes truncated(sealed.begin(), sealed.end() - 1);
      Result<std::string> opened = UnsealCode(keys, truncated);
      REQUIRE_FALSE(opened.ok());
      CHECK(opened.error().code == "unseal_failed");
    }
    SUBCASE("shorter than nonce and MAC") {
      for (std::size_t size : {std::size_t{0}, std::size_t{10}, std::size_t{39}}) {
        CAPTURE(size);
        Bytes stub(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(size));
        Result<std::string> opened = UnsealCode(keys, stub);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().code == "unseal_failed");
      }
    }
    SUBCASE("sealed under another key") {
      Result<std::string> opened = UnsealCode(other_keys, sealed);
      REQUIRE_FALSE(opened.ok());
      CHECK(opened.error().code == "unseal_failed");
    }
    SUBCASE("error messages never hold the code") {
      Bytes tampered = sealed;
      tampered.back() ^= 0xff;
      Result<std::string> opened = UnsealCode(keys, tampered);
      REQUIRE_FALSE(opened.ok());
      CHECK(opened.error().message.find("123456") == std::string::npos);
    }
  }

  TEST_CASE("GenerateChallengeId gives ch_ and 26 base32 characters") {
    InitSodium();
    SodiumRandom random;
    std::set<std::string> seen;

    for (int i = 0; i < 1000; ++i) {
      std::string id = GenerateChallengeId(random);
      REQUIRE(id.size() == 29);
      REQUIRE(id.rfind("ch_", 0) == 0);
      for (std::size_t c = 3; c < id.size(); ++c) {
        CAPTURE(id);
        REQUIRE(std::string("abcdefghijklmnopqrstuvwxyz234567").find(id[c]) != std::string::npos);
      }
      REQUIRE(ChallengeService::LooksLikeChallengeId(id));
      seen.insert(id);
    }
    CHECK(seen.size() == 1000);
  }

  TEST_CASE("GenerateChallengeId maps each of the 32 values to its base32 character") {
    FakeRandom random;
    std::vector<std::uint32_t> values;
    for (std::uint32_t v = 0; v < 26; ++v)
      values.push_back(v);
    random.Script(values);
    CHECK(GenerateChallengeId(random) == "ch_abcdefghijklmnopqrstuvwxyz");

    random.Script(
        {26, 27, 28, 29, 30, 31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK(GenerateChallengeId(random) == "ch_234567aaaaaaaaaaaaaaaaaaaa");

    for (std::uint32_t bound : random.bounds())
      CHECK(bound == 32);
  }

  TEST_CASE("LooksLikeChallengeId refuses anything not shaped like an id") {
    const std::string body(26, 'a');

    CHECK(ChallengeService::LooksLikeChallengeId("ch_" + body));
    CHECK(ChallengeService::LooksLikeChallengeId("ch_234567abcdefghijklmnopqrst"));

    CHECK_FALSE(ChallengeService::LooksLikeChallengeId(""));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch_"));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch_" + body.substr(1)));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch_" + body + "a"));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("CH_" + body));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("xx_" + body));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch-" + body));
    CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch_" + std::string(25, 'a') + "A"));
    for (char bad : {'0', '1', '8', '9', '_', '/', '.'}) {
      CAPTURE(bad);
      CHECK_FALSE(ChallengeService::LooksLikeChallengeId("ch_" + std::string(25, 'a') + bad));
    }
  }

}  // TEST_SUITE
