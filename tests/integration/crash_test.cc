// Crashes under load, over and over: kill -9 at a random moment while creates and verifies
// run, then a restart on the same database. A SQLite file must stay intact, every
// acknowledged challenge must survive, get its SMS and verify, and no code may ever be
// approved twice.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "integration/test_helpers.h"
#include "support/sql_reader.h"

namespace sidecar::testing {
namespace {

constexpr int kRounds = 20;
constexpr int kWriters = 3;
constexpr int kMaxCreatesPerWriter = 200;  // a round ends by the kill long before

// What the verify of a challenge sent before the kill saw.
enum class Verified { kNotSent, kApproved, kNoAnswer };

// One round of load on a running sidecar: writers create challenges for new users while a
// verifier verifies each acknowledged one, in order, once its SMS is in the file. Every
// thread stops when its request gets no answer, as when the sidecar is killed.
class Load {
 public:
  Load(const SidecarProcess& sidecar, int round) : sidecar_(sidecar), round_(round) {
    for (int w = 0; w < kWriters; ++w)
      threads_.emplace_back([this, w] { Write(w); });
    threads_.emplace_back([this] { VerifyAcknowledged(); });
  }
  ~Load() { Join(); }
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  std::size_t acknowledged_count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return acknowledged_.size();
  }

  // Stops the threads (the sidecar is gone by now) and waits for them.
  void Join() {
    stop_.store(true);
    for (std::thread& thread : threads_)
      thread.join();
    threads_.clear();
  }

  // After Join(): the ids answered 202, what their verify saw, and answers no request
  // should have had.
  const std::vector<std::string>& acknowledged() const { return acknowledged_; }
  Verified verified(const std::string& id) const {
    auto it = verified_.find(id);
    return it == verified_.end() ? Verified::kNotSent : it->second;
  }
  const std::vector<std::string>& unexpected() const { return unexpected_; }

 private:
  void Write(int writer) {
    httplib::Client client = sidecar_.client();
    client.set_keep_alive(true);
    for (int n = 0; !stop_.load() && n < kMaxCreatesPerWriter; ++n) {
      std::string user =
          "r" + std::to_string(round_) + "-w" + std::to_string(writer) + "-" + std::to_string(n);
      HttpReply reply =
          PostJson(client, "/v1/challenges", {{"user", user}, {"phone", kAlicePhone}});
      if (!reply.ok()) return;

      std::lock_guard<std::mutex> lock(mutex_);
      if (reply.status == 202) {
        acknowledged_.push_back(reply.str("challenge_id"));
      } else {
        unexpected_.push_back("create: " + reply.describe());
      }
    }
  }

  void VerifyAcknowledged() {
    httplib::Client client = sidecar_.client();
    client.set_keep_alive(true);
    std::size_t next = 0;
    while (!stop_.load()) {
      std::string id = AcknowledgedAt(next);
      std::vector<SmsRecord> sms = id.empty() ? std::vector<SmsRecord>() : sidecar_.SmsFor(id);
      if (sms.empty()) {
        std::this_thread::sleep_for(Millis(2));  // polls for the next SMS
        continue;
      }
      SetVerified(id, Verified::kNoAnswer);
      HttpReply reply = VerifyById(client, id, sms.front().code);
      if (!reply.ok()) return;

      if (reply.str("status") == "approved") {
        SetVerified(id, Verified::kApproved);
      } else {
        std::lock_guard<std::mutex> lock(mutex_);
        unexpected_.push_back("verify before the kill: " + reply.describe());
      }
      ++next;
    }
  }

  std::string AcknowledgedAt(std::size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    return index < acknowledged_.size() ? acknowledged_[index] : "";
  }

  void SetVerified(const std::string& id, Verified verified) {
    std::lock_guard<std::mutex> lock(mutex_);
    verified_[id] = verified;
  }

  const SidecarProcess& sidecar_;
  const int round_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> acknowledged_;     // guarded by mutex_
  std::map<std::string, Verified> verified_;  // guarded by mutex_
  std::vector<std::string> unexpected_;       // guarded by mutex_
};

// Right after the kill, before anything opens the database again: SQLite finds the file
// intact, and it holds every acknowledged challenge with its delivery.
void CheckDatabaseAfterKill(const SidecarProcess& sidecar,
                            const std::vector<std::string>& acknowledged) {
  CheckSqliteFileIntact(sidecar);
  SqlReader db(sidecar.database());
  for (const std::string& id : acknowledged) {
    INFO("acknowledged ", id);
    CHECK(db.Int("SELECT COUNT(*) FROM challenges WHERE id = ?1", {id}) == 1);
    CHECK(db.Int("SELECT COUNT(*) FROM deliveries WHERE challenge_id = ?1", {id}) == 1);
  }
}

// After the restart: every delivery still to do goes out, and each acknowledged challenge
// verifies with the code of its SMS exactly once: approved now if no approval was seen
// before the kill, "used" when one was (or when the answer was lost with the kill).
void CheckAfterRestart(SidecarProcess& sidecar, const Load& load) {
  bool delivered = PollUntil(
      [&] {
        SqlReader db(sidecar.database());
        return db.Int("SELECT COUNT(*) FROM deliveries WHERE state IN ('queued', 'sending')") == 0;
      },
      Millis(20'000), Millis(20));
  CHECK(delivered);

  httplib::Client client = sidecar.client();
  for (const std::string& id : load.acknowledged()) {
    std::string code = sidecar.WaitForSms(id);
    std::string first = VerifyById(client, id, code).str("status");
    std::string second = VerifyById(client, id, code).str("status");
    Verified before = load.verified(id);
    INFO("challenge ", id, " verified before the kill: ", static_cast<int>(before));
    if (before == Verified::kApproved) CHECK(first == "used");
    if (before == Verified::kNotSent) CHECK(first == "approved");
    if (before == Verified::kNoAnswer) CHECK((first == "approved" || first == "used"));
    CHECK(second == "used");
  }
}

TEST_CASE("20 rounds of kill -9 under load: the file stays intact and every code verifies once") {
  // Every create is for a new user; the send limits would stop the load.
  SidecarProcess sidecar(LimitsOff());
  unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  std::uniform_int_distribution<std::size_t> acknowledged_before_kill(1, 12);
  std::size_t total = 0;

  for (int round = 0; round < kRounds; ++round) {
    INFO("seed ", seed, ", round ", round);
    std::size_t kill_after = acknowledged_before_kill(random);
    Load load(sidecar, round);
    bool loaded = PollUntil([&] { return load.acknowledged_count() >= kill_after; }, Millis(20'000),
                            Millis(1));
    sidecar.Kill9();
    load.Join();
    REQUIRE(loaded);
    CHECK(load.unexpected().empty());
    for (const std::string& answer : load.unexpected())
      MESSAGE(answer);

    CheckDatabaseAfterKill(sidecar, load.acknowledged());
    sidecar.Restart();
    CheckAfterRestart(sidecar, load);
    total += load.acknowledged().size();
  }

  // Across all rounds, each acknowledged challenge was approved once, and no challenge
  // twice.
  SqlReader db(sidecar.database());
  CHECK(db.Int("SELECT COUNT(*) FROM audit_events WHERE event = 'verify' AND "
               "outcome = 'approved'") == static_cast<std::int64_t>(total));
  CHECK(db.Int("SELECT COUNT(*) FROM (SELECT challenge_id FROM audit_events WHERE event = "
               "'verify' AND outcome = 'approved' GROUP BY challenge_id HAVING COUNT(*) > 1) AS "
               "twice") == 0);
  CheckSqliteFileIntact(sidecar);
}

}  // namespace
}  // namespace sidecar::testing
