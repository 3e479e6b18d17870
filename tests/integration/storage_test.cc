// The database failing under a running sidecar: full (database_max_size reached) or turned
// read-only. Requests get 503 problems, nothing is half-written, and service comes back
// once the database can take writes again.

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "integration/immutable_files.h"
#include "integration/parallel.h"
#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

constexpr std::int64_t kSmallDatabase = 1024 * 1024;
// Room left below kSmallDatabase by TakeRoom: more than /readyz needs to be ready (64
// pages), and a hundred or so creates, not several hundred, fill it.
constexpr std::int64_t kRoomLeftPages = 80;

// Takes up the database's room up to `room_pages` below `max_bytes`, with a table of the
// test's own that the sidecar never reads, as if it had been filling for a long time.
void TakeRoom(const std::string& database, std::int64_t max_bytes, std::int64_t room_pages) {
  std::int64_t pages = 0;
  std::int64_t page_size = 0;
  {
    SqlReader db(database);
    pages = db.Int("PRAGMA page_count");
    page_size = db.Int("PRAGMA page_size");
  }
  // A blob takes its size in overflow pages, each holding a little less than a page.
  std::int64_t filler_pages = max_bytes / page_size - pages - room_pages;
  REQUIRE(filler_pages > 0);
  ExecSql(database,
          "CREATE TABLE test_filler (data BLOB); INSERT INTO test_filler VALUES "
          "(zeroblob(" +
              std::to_string(filler_pages * (page_size - 8)) + "))");
}

// A 503 for a database fault: problem+json with `code` and Retry-After: 1.
void CheckStorageProblem(const HttpReply& reply, const std::string& code) {
  CheckProblemAnswer(reply, 503, code);
  INFO("reply: ", reply.describe());
  CHECK(reply.header("Retry-After") == "1");
}

// What the creates of FillWithCreates saw.
struct Fill {
  std::vector<std::string> acknowledged;  // ids answered 202
  std::vector<HttpReply> refusals;        // the first answer other than 202 of each client
};

// Creates challenges for distinct users from `clients` clients at once, each until it is
// answered anything but 202 (at most `per_client` creates each). Long user names fill the
// database sooner.
Fill FillWithCreates(const SidecarProcess& sidecar, int clients, int per_client) {
  Fill fill;
  std::mutex mutex;
  std::vector<HttpReply> last = InParallel(sidecar, clients, [&](httplib::Client& c, int i) {
    HttpReply reply;
    for (int n = 0; n < per_client; ++n) {
      std::string user = std::string(200, static_cast<char>('a' + i)) + "-" + std::to_string(n);
      reply = PostJson(c, "/v1/challenges", {{"user", user}, {"phone", kAlicePhone}});
      if (reply.status != 202) break;
      std::lock_guard<std::mutex> lock(mutex);
      fill.acknowledged.push_back(reply.str("challenge_id"));
    }
    return reply;
  });
  for (HttpReply& reply : last) {
    if (reply.status != 202) fill.refusals.push_back(reply);
  }
  return fill;
}

// Checks that the database holds exactly the challenges of `acknowledged`, each with its
// delivery and its one "create" audit row, and nothing of a create that was refused.
void CheckOnlyAcknowledgedStored(const SidecarProcess& sidecar,
                                 const std::vector<std::string>& acknowledged) {
  SqlReader db(sidecar.database());
  std::set<std::string> stored;
  for (const auto& row : db.Rows("SELECT id FROM challenges"))
    stored.insert(row[0]);
  CHECK(stored == std::set<std::string>(acknowledged.begin(), acknowledged.end()));
  CHECK(db.Int("SELECT COUNT(*) FROM challenges c WHERE NOT EXISTS "
               "(SELECT 1 FROM deliveries d WHERE d.challenge_id = c.id)") == 0);
  CHECK(db.Int("SELECT COUNT(*) FROM deliveries") == static_cast<std::int64_t>(stored.size()));
  CHECK(db.Int("SELECT COUNT(*) FROM audit_events WHERE event = 'create'") ==
        static_cast<std::int64_t>(stored.size()));
  CHECK(db.Int("SELECT COUNT(*) FROM audit_events a WHERE a.event = 'create' AND NOT EXISTS "
               "(SELECT 1 FROM challenges c WHERE c.id = a.challenge_id)") == 0);
}

// Waits until every challenge of `ids` has had its SMS; returns how many have not.
std::size_t WaitForAllSms(const SidecarProcess& sidecar, const std::vector<std::string>& ids) {
  std::size_t missing = ids.size();
  PollUntil(
      [&] {
        std::set<std::string> sent;
        for (const SmsRecord& sms : sidecar.AllSms())
          sent.insert(sms.challenge_id);
        missing = static_cast<std::size_t>(std::count_if(
            ids.begin(), ids.end(), [&](const std::string& id) { return sent.count(id) == 0; }));
        return missing == 0;
      },
      Millis(20'000), Millis(50));
  return missing;
}

std::string WithMaxSize(const std::string& size) {
  return "database_max_size = \"" + size + "\"\n";
}

TEST_CASE("a full database answers 503 storage_full, half-writes nothing, and serves again") {
  if (SkippedUnderPostgres("database_max_size applies to SQLite only")) return;
  SidecarProcess sidecar(LimitsOff());
  REQUIRE(sidecar.Stop() == 0);
  TakeRoom(sidecar.database_path(), kSmallDatabase, kRoomLeftPages);
  std::string limited = WithMaxSize("1MiB") + sidecar.config_text();
  WriteFileBytes(sidecar.config_path(), limited);
  sidecar.Restart();
  httplib::Client client = sidecar.client();
  REQUIRE(Get(client, "/readyz").status == 200);

  Fill fill = FillWithCreates(sidecar, 4, 2000);
  INFO("acknowledged before the database was full: ", fill.acknowledged.size());
  REQUIRE(fill.refusals.size() == 4);
  for (const HttpReply& refusal : fill.refusals)
    CheckStorageProblem(refusal, "storage_full");
  CHECK(fill.acknowledged.size() > 20);  // the room left at the start took a good many

  // The sidecar says why. (No further create is tried: one smaller than those refused may
  // still fit in what room is left.)
  CheckStorageProblem(Get(client, "/readyz"), "database_full");
  CHECK(Get(client, "/healthz").status == 200);
  std::string err = sidecar.stderr_text();
  CHECK(err.find("level=error subsystem=http msg=\"request failed\"") != std::string::npos);
  CHECK(err.find("code=storage_full") != std::string::npos);
  CHECK(err.find("msg=\"not ready\"") != std::string::npos);
  CHECK(err.find("code=database_full") != std::string::npos);

  CheckOnlyAcknowledgedStored(sidecar, fill.acknowledged);
  {
    SqlReader db(sidecar.database_path());
    CHECK(db.Int("PRAGMA page_count") * db.Int("PRAGMA page_size") <= kSmallDatabase);
  }

  // Space returns with a larger limit and a restart: ready, every queued SMS goes out, and
  // both old and new challenges verify.
  CHECK(sidecar.Stop() == 0);
  limited.replace(limited.find("1MiB"), 4, "4MiB");
  WriteFileBytes(sidecar.config_path(), limited);
  sidecar.Restart();
  httplib::Client again = sidecar.client();
  CHECK(Get(again, "/readyz").status == 200);
  CHECK(WaitForAllSms(sidecar, fill.acknowledged) == 0);
  for (const std::string& id : {fill.acknowledged.front(), fill.acknowledged.back()}) {
    CHECK(VerifyById(again, id, sidecar.WaitForSms(id)).str("status") == "approved");
  }
  std::string id = CreateChallenge(again, "after");
  CHECK(VerifyById(again, id, sidecar.WaitForSms(id)).str("status") == "approved");
}

TEST_CASE("a read-only database answers 503 storage_unavailable and half-writes nothing") {
  if (::geteuid() != 0) {
    MESSAGE("making a file read-only under an open descriptor needs root; skipped");
    return;
  }
  if (SkippedUnderPostgres("a read-only database file is SQLite's")) return;
  SidecarProcess sidecar(LimitsOff());
  httplib::Client client = sidecar.client();
  std::string before = CreateChallenge(client, "before");
  std::string code = sidecar.WaitForSms(before);
  std::vector<std::string> acknowledged = {before};

  {
    std::string db = sidecar.database_path();
    ImmutableFiles read_only({db, db + "-wal"});
    CheckStorageProblem(
        PostJson(client, "/v1/challenges", {{"user", "during"}, {"phone", kAlicePhone}}),
        "storage_unavailable");
    CheckStorageProblem(VerifyById(client, before, WrongCode(code)), "storage_unavailable");
    CheckStorageProblem(Get(client, "/readyz"), "database_unavailable");
    CHECK(sidecar.stderr_text().find("code=storage_unavailable") != std::string::npos);
  }

  // Writable again: nothing of the refused requests was kept, and service is normal.
  CHECK(
      PollUntil([&] { return Get(client, "/readyz").status == 200; }, Millis(15'000), Millis(100)));
  CheckOnlyAcknowledgedStored(sidecar, acknowledged);
  {
    SqlReader db(sidecar.database_path());
    CHECK(db.Int("SELECT attempts FROM challenges WHERE id = ?1", {before}) == 0);
    CHECK(db.Int("SELECT COUNT(*) FROM audit_events WHERE event = 'verify'") == 0);
  }
  std::string after = CreateChallenge(client, "after");
  CHECK(VerifyById(client, after, sidecar.WaitForSms(after)).str("status") == "approved");
  CHECK(VerifyById(client, before, code).str("status") == "approved");
}

TEST_CASE("serve and check-config refuse a database_max_size below the file's size") {
  if (SkippedUnderPostgres("database_max_size applies to SQLite only")) return;
  // A limit of bytes meant as MiB is refused by the configuration check, whatever the file.
  TempDir dir;
  std::string config = dir.File("config.toml");
  WriteFileBytes(config, WithMaxSize("1048575"));
  ExitResult tiny = RunSidecarToExit(
      {"check-config", "--config", config, "--database", dir.File("otp.db")}, dir.path());
  INFO("check-config: ", tiny.out, tiny.err);
  CHECK(tiny.exit_code == 2);
  CHECK(tiny.out.find("config.toml:1: database_max_size: must be 0 (no limit) or at least") !=
        std::string::npos);

  // A limit the file is already past is refused by both commands. The check reads the
  // file's size only, before anything opens it, so a file of that size stands in for a
  // database that grew.
  std::string grown = dir.File("grown.db");
  WriteFileBytes(grown, std::string(static_cast<std::size_t>(2 * kSmallDatabase), '\0'));
  WriteFileBytes(config, WithMaxSize("1MiB"));
  for (const char* command : {"check-config", "serve"}) {
    ExitResult run = RunSidecarToExit(
        {command, "--config", config, "--database", grown, "--listen", "127.0.0.1:0"}, dir.path(),
        Millis(5000));
    INFO(command, ": ", run.out, run.err);
    CHECK(run.exit_code == 2);
    CHECK((run.out + run.err)
              .find("config.toml:1: database_max_size: 1048576 bytes is less than " + grown +
                    " already takes (2097152 bytes)") != std::string::npos);
    CHECK((run.out + run.err).find("msg=listening") == std::string::npos);
  }
}

}  // namespace
}  // namespace sidecar::testing
