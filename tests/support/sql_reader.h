#pragma once

// Direct access to a sidecar's database: a read-only connection for tests that check what
// the product wrote without going through the product's own reads, and one-off writes for
// tests that set up a state the product would take long to reach. Shared by the unit and
// the integration tests. The database is in WAL mode, so it may be read while a sidecar
// writes, and after one was killed.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sidecar::testing {

// A read-only connection; fails the test when the file cannot be opened.
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

// Runs `sql` (one or more statements) on the database with a read-write connection of its
// own, while no sidecar has it open; fails the test on an error. Returns how many rows the
// last statement changed.
inline int ExecSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  INFO("open ", path, ": ", sqlite3_errstr(rc));
  REQUIRE(rc == SQLITE_OK);
  char* error = nullptr;
  rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  int changed = sqlite3_changes(db);
  sqlite3_close(db);
  INFO("sql: ", sql, " error: ", message);
  REQUIRE(rc == SQLITE_OK);
  return changed;
}

}  // namespace sidecar::testing
