#pragma once

// Helpers shared by the unit tests only (the fakes themselves live in support/fakes.h).

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "challenges/challenge_service.h"
#include "codes/codes.h"
#include "limits/limiter.h"
#include "store/sqlite_store.h"
#include "support/fakes.h"
#include "support/sql_reader.h"

namespace sidecar::testing {

inline void InitSodium() {
  REQUIRE(sodium_init() >= 0);
}

// A fixed master key; different seeds give different keys.
inline std::array<unsigned char, kMasterKeySize> TestMasterKey(unsigned char seed = 7) {
  std::array<unsigned char, kMasterKeySize> key{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<unsigned char>(seed + i * 13);
  }
  return key;
}

inline std::unique_ptr<SqliteStore> OpenStore(const std::string& path) {
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
  return std::move(store).value();
}

// Runs `body` in a transaction and requires it to succeed.
inline void MustTransact(Store& store, const std::function<Status(StoreTx&)>& body) {
  Status status = store.Transact(body);
  REQUIRE_MESSAGE(status.ok(), (status.ok() ? "" : status.error().message));
}

inline std::optional<Challenge> FindChallenge(Store& store, const std::string& id) {
  std::optional<Challenge> out;
  MustTransact(store, [&](StoreTx& tx) -> Status {
    Result<std::optional<Challenge>> found = tx.FindChallenge(id);
    if (!found.ok()) return found.error();
    out = *found;
    return OkStatus();
  });
  return out;
}

inline Challenge LoadChallenge(Store& store, const std::string& id) {
  std::optional<Challenge> found = FindChallenge(store, id);
  REQUIRE_MESSAGE(found.has_value(), "no challenge " << id);
  return *found;
}

inline std::optional<Delivery> LatestDelivery(Store& store, const std::string& challenge_id) {
  std::optional<Delivery> out;
  MustTransact(store, [&](StoreTx& tx) -> Status {
    Result<std::optional<Delivery>> found = tx.FindLatestDelivery(challenge_id);
    if (!found.ok()) return found.error();
    out = *found;
    return OkStatus();
  });
  return out;
}

struct AuditRow {
  std::string event;
  std::string outcome;
  std::string user;
  std::string client_ip;
  std::string phone_masked;
  std::string detail;
};

// The audit rows whose `column` is `value`, oldest first.
inline std::vector<AuditRow> AuditWhere(const std::string& db_path, const std::string& column,
                                        const std::string& value) {
  SqlReader reader(db_path);
  std::vector<AuditRow> out;
  for (const auto& row :
       reader.Rows("SELECT event, outcome, user, client_ip, phone_masked, detail FROM audit_events "
                   "WHERE " +
                       column + " = ?1 ORDER BY id",
                   {value})) {
    out.push_back(AuditRow{row[0], row[1], row[2], row[3], row[4], row[5]});
  }
  return out;
}

// The audit rows of one challenge, oldest first.
inline std::vector<AuditRow> AuditOf(const std::string& db_path, const std::string& challenge_id) {
  return AuditWhere(db_path, "challenge_id", challenge_id);
}

// "event/outcome" of each audit row, for compact comparisons.
inline std::vector<std::string> AuditTrail(const std::string& db_path,
                                           const std::string& challenge_id) {
  std::vector<std::string> out;
  for (const AuditRow& row : AuditOf(db_path, challenge_id)) {
    out.push_back(row.event + "/" + row.outcome);
  }
  return out;
}

// The audit rows with `outcome` ("refused", "suspended", ...), oldest first, whatever their
// challenge: a refused create audits the id of a challenge that was never stored.
inline std::vector<AuditRow> AuditWithOutcome(const std::string& db_path,
                                              const std::string& outcome) {
  return AuditWhere(db_path, "outcome", outcome);
}

// Sets (or unsets, with nullopt) an environment variable for one scope, then puts back
// what was there.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    const char* old = std::getenv(name_.c_str());
    if (old != nullptr) old_ = old;
    Apply(value);
  }
  ~ScopedEnv() { Apply(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void Apply(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

  std::string name_;
  std::optional<std::string> old_;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteWholeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

// Runs `body` with stderr sent to a file, and returns what it wrote there.
template <typename Body>
std::string CaptureStderr(Body body) {
  TempDir dir;
  std::string path = dir.File("stderr.txt");
  int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(file >= 0);
  int saved = ::dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(file, STDERR_FILENO) >= 0);
  ::close(file);

  body();

  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  return ReadWholeFile(path);
}

// ---- The challenge service, wired for tests --------------------------------------------

inline constexpr const char* kTestPhone = "+12065550100";  // US, masked "+1206*****00"

// Every limit off: no rule in any list, no pumping guard, no resend cooldown. For the tests
// that are not about limits; a test about one limit switches on only that one.
inline LimitSettings NoLimits() {
  LimitSettings s;
  s.resend_cooldown_ms = 0;
  s.user_sends.clear();
  s.phone_sends.clear();
  s.ip_sends.clear();
  s.region_sends.clear();
  s.global_sends.clear();
  s.user_failures.clear();
  s.ip_failures.clear();
  s.exempt_numbers.clear();
  s.pumping.enabled = false;
  return s;
}

// 6-digit codes valid for 5 minutes.
inline ChallengeSettings TestChallengeSettings(int max_attempts = 5,
                                               std::string first_provider = "console") {
  ChallengeSettings settings;
  settings.code_length = 6;
  settings.ttl_ms = 300'000;
  settings.max_attempts = max_attempts;
  settings.first_provider = std::move(first_provider);
  return settings;
}

// A create request as ParseCreateRequest would make it for a US number.
inline CreateRequest UsRequest(std::string user, std::string client_ip = "",
                               std::string locale = "", std::string phone = kTestPhone) {
  CreateRequest request;
  request.user = std::move(user);
  request.phone = std::move(phone);
  request.region = "US";
  request.locale = std::move(locale);
  request.client_ip = std::move(client_ip);
  return request;
}

// The code with its last digit changed: well-formed, never the right one.
inline std::string WrongCode(const std::string& right) {
  std::string wrong = right;
  wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
  return wrong;
}

// A ChallengeService on a real SqliteStore (in a temporary folder, or on `db_path` when one
// is given, so that a test can reopen the same file), with a FakeClock, FakeRandom and a
// real Limiter. Every queued delivery counts in `wakes` and then calls `on_queued`, which
// a test may set before it creates anything.
struct ServiceFixture {
  explicit ServiceFixture(ChallengeSettings challenge_settings = TestChallengeSettings(),
                          LimitSettings limit_settings = NoLimits(),
                          const std::string& db_path = "")
      : path(db_path.empty() ? dir.File("otp.db") : db_path),
        store(OpenStore(path)),
        settings(std::move(challenge_settings)),
        limiter(std::move(limit_settings)),
        service(
            *store, keys, clock, random, limiter, settings,
            [this] {
              wakes.fetch_add(1);
              if (on_queued) on_queued();
            },
            metrics) {}

  // Another service on the same store, clock and limiter, drawing from `other_random`
  // (SodiumRandom for threads: FakeRandom's counter could hand two threads one id).
  ChallengeService ServiceWith(RandomSource& other_random) {
    return ChallengeService(*store, keys, clock, other_random, limiter, settings, [] {});
  }

  CreatedChallenge MustCreate(const CreateRequest& request) {
    Result<CreatedChallenge> created = service.Create(request);
    REQUIRE_MESSAGE(created.ok(),
                    (created.ok() ? "" : created.error().code + ": " + created.error().message));
    return *created;
  }

  // The code that was sealed for delivery, as the user would receive it.
  std::string CodeOf(const std::string& id) {
    Challenge c = LoadChallenge(*store, id);
    REQUIRE(c.sealed_code.has_value());
    Result<std::string> code = UnsealCode(keys, *c.sealed_code);
    REQUIRE(code.ok());
    return *code;
  }

  Delivery Latest(const std::string& id) {
    std::optional<Delivery> d = LatestDelivery(*store, id);
    REQUIRE(d.has_value());
    return *d;
  }

  // Marks the challenge's latest delivery sent, as the delivery worker would.
  void MarkSent(const std::string& id) {
    MustTransact(*store, [&](StoreTx& tx) -> Status {
      Result<std::optional<Delivery>> found = tx.FindLatestDelivery(id);
      if (!found.ok()) return found.error();
      if (!found->has_value()) return MakeError("no_delivery", "the challenge has no delivery");
      Delivery d = **found;
      d.state = DeliveryState::kSent;
      return tx.UpdateDelivery(d);
    });
  }

  std::vector<std::string> Trail(const std::string& id) { return AuditTrail(path, id); }

  bool sodium_ready = (InitSodium(), true);
  TempDir dir;
  std::string path;
  std::unique_ptr<SqliteStore> store;
  CodeKeys keys{TestMasterKey()};
  FakeClock clock;
  FakeRandom random;
  ChallengeSettings settings;
  Limiter limiter;
  std::atomic<int> wakes{0};
  std::function<void()> on_queued;
  RecordingMetrics metrics;  // what the service counted
  ChallengeService service;
};

// Runs `count` threads that start together; thread i returns body(i), a Result<T>.
template <typename T, typename Body>
std::vector<Result<T>> RunTogetherResults(int count, Body body) {
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::vector<Result<T>> results(static_cast<std::size_t>(count),
                                 Result<T>(MakeError("not_run", "")));
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load())
        std::this_thread::yield();
      results[static_cast<std::size_t>(i)] = body(i);
    });
  }
  while (ready.load() < count)
    std::this_thread::yield();
  go.store(true);
  for (std::thread& thread : threads)
    thread.join();
  return results;
}

// The same, requiring every result to be ok.
template <typename T, typename Body>
std::vector<T> RunTogether(int count, Body body) {
  std::vector<T> out;
  for (const Result<T>& result : RunTogetherResults<T>(count, body)) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().code));
    out.push_back(*result);
  }
  return out;
}

}  // namespace sidecar::testing
