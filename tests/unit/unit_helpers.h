#pragma once

// Helpers shared by the unit tests only (the fakes themselves live in support/fakes.h).

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "codes/codes.h"
#include "store/sqlite_store.h"
#include "support/fakes.h"

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

// A second, read-only connection to a database, to check what the product wrote without
// going through the product's own reads.
class SqlReader {
 public:
  explicit SqlReader(const std::string& path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    REQUIRE_MESSAGE(rc == SQLITE_OK, "cannot open " << path);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~SqlReader() { sqlite3_close(db_); }
  SqlReader(const SqlReader&) = delete;
  SqlReader& operator=(const SqlReader&) = delete;

  // Every row of `sql`, each column as text; NULL reads as "<null>".
  std::vector<std::vector<std::string>> Rows(const std::string& sql,
                                             const std::vector<std::string>& params = {}) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
    REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << sqlite3_errmsg(db_));
    for (std::size_t i = 0; i < params.size(); ++i) {
      sqlite3_bind_text(stmt, static_cast<int>(i + 1), params[i].c_str(), -1, SQLITE_TRANSIENT);
    }
    std::vector<std::vector<std::string>> rows;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        const unsigned char* text = sqlite3_column_text(stmt, c);
        row.push_back(text == nullptr ? "<null>" : reinterpret_cast<const char*>(text));
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    REQUIRE_MESSAGE(rc == SQLITE_DONE, sql << ": " << sqlite3_errmsg(db_));
    return rows;
  }

  std::int64_t Int(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto rows = Rows(sql, params);
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0].size() >= 1);
    return std::stoll(rows[0][0]);
  }

 private:
  sqlite3* db_ = nullptr;
};

struct AuditRow {
  std::string event;
  std::string outcome;
  std::string user;
  std::string client_ip;
  std::string phone_masked;
  std::string detail;
};

// The audit rows of one challenge, oldest first.
inline std::vector<AuditRow> AuditOf(const std::string& db_path, const std::string& challenge_id) {
  SqlReader reader(db_path);
  std::vector<AuditRow> out;
  for (const auto& row :
       reader.Rows("SELECT event, outcome, user, client_ip, phone_masked, detail FROM audit_events "
                   "WHERE challenge_id = ?1 ORDER BY id",
                   {challenge_id})) {
    out.push_back(AuditRow{row[0], row[1], row[2], row[3], row[4], row[5]});
  }
  return out;
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

}  // namespace sidecar::testing
