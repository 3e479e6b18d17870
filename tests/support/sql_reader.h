#pragma once

// Direct access to a sidecar's database: a read-only connection for tests that check what
// the product wrote without going through the product's own reads, and one-off writes for
// tests that set up a state the product would take long to reach. Shared by the unit and
// the integration tests.
//
// The database is a SQLite file path or a PostgreSQL URI (postgresql://... or
// postgres://...). SQL is written once for both: parameters as SQLite's ?1 or ?, which
// become $1 for PostgreSQL; `"user"` quoted (a reserved word there). A SQLite database is in
// WAL mode, so it may be read while a sidecar writes, and after one was killed.

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace sidecar::testing {

// True when `database` is a PostgreSQL URI, false for a SQLite file path.
inline bool IsPostgresUri(const std::string& database) {
  return database.rfind("postgresql://", 0) == 0 || database.rfind("postgres://", 0) == 0;
}

// `sql` with SQLite's parameters (?NNN, and ? for the next number) written as PostgreSQL's
// $NNN. Text in single or double quotes is kept as it is.
inline std::string PostgresParameters(const std::string& sql) {
  std::string out;
  char quote = 0;
  int highest = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote != 0 || c == '\'' || c == '"') {
      // A doubled quote inside quotes closes and reopens, which leaves the state right.
      quote = quote == 0 ? c : (c == quote ? 0 : quote);
      out += c;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t end = sql.find_first_not_of("0123456789", i + 1);
    if (end == std::string::npos) end = sql.size();
    int number = end > i + 1 ? std::atoi(sql.substr(i + 1, end - i - 1).c_str()) : highest + 1;
    highest = std::max(highest, number);
    out += "$" + std::to_string(number);
    i = end - 1;
  }
  return out;
}

// A read-only connection; fails the test when the database cannot be opened.
class SqlReader {
 public:
  explicit SqlReader(const std::string& database) {
    if (IsPostgresUri(database)) {
      // The URI's own settings are kept; only read-only transactions are added.
      const char* keywords[] = {"dbname", "options", nullptr};
      const char* values[] = {database.c_str(), "-c default_transaction_read_only=on", nullptr};
      pg_ = PQconnectdbParams(keywords, values, 1);
      REQUIRE_MESSAGE(PQstatus(pg_) == CONNECTION_OK,
                      "cannot connect to " << database << ": " << PQerrorMessage(pg_));
      return;
    }
    int rc = sqlite3_open_v2(database.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    REQUIRE_MESSAGE(rc == SQLITE_OK, "cannot open " << database);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~SqlReader() {
    if (pg_ != nullptr) PQfinish(pg_);
    sqlite3_close(db_);
  }
  SqlReader(const SqlReader&) = delete;
  SqlReader& operator=(const SqlReader&) = delete;

  // Every row of `sql`, each column as text; NULL reads as "<null>".
  std::vector<std::vector<std::string>> Rows(const std::string& sql,
                                             const std::vector<std::string>& params = {}) {
    return pg_ != nullptr ? PostgresRows(sql, params) : SqliteRows(sql, params);
  }

  std::int64_t Int(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto rows = Rows(sql, params);
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0].size() >= 1);
    return std::stoll(rows[0][0]);
  }

 private:
  std::vector<std::vector<std::string>> SqliteRows(const std::string& sql,
                                                   const std::vector<std::string>& params) {
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

  std::vector<std::vector<std::string>> PostgresRows(const std::string& sql,
                                                     const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const std::string& param : params)
      values.push_back(param.c_str());
    // Text parameters of no stated type: the server gives each the type its place needs.
    PGresult* result =
        PQexecParams(pg_, PostgresParameters(sql).c_str(), static_cast<int>(values.size()), nullptr,
                     values.data(), nullptr, nullptr, 0);
    std::string error = PQresultErrorMessage(result);
    bool ok = PQresultStatus(result) == PGRES_TUPLES_OK;
    std::vector<std::vector<std::string>> rows;
    for (int r = 0; ok && r < PQntuples(result); ++r) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(result); ++c)
        row.push_back(PQgetisnull(result, r, c) ? "<null>" : PQgetvalue(result, r, c));
      rows.push_back(row);
    }
    PQclear(result);
    REQUIRE_MESSAGE(ok, sql << ": " << error);
    return rows;
  }

  sqlite3* db_ = nullptr;
  PGconn* pg_ = nullptr;
};

// Runs `sql` (one or more statements, without parameters) on the database with a read-write
// connection of its own; fails the test on an error. A sidecar may have the database open (on
// SQLite this waits up to 5 s for its write lock). Returns how many rows the last statement
// changed.
inline int ExecSql(const std::string& database, const std::string& sql) {
  if (IsPostgresUri(database)) {
    PGconn* pg = PQconnectdb(database.c_str());
    bool connected = PQstatus(pg) == CONNECTION_OK;
    std::string connect_error = PQerrorMessage(pg);
    if (!connected) PQfinish(pg);
    INFO("connect ", database, ": ", connect_error);
    REQUIRE(connected);
    // The simple query protocol runs every statement and returns the last one's result.
    PGresult* result = PQexec(pg, sql.c_str());
    ExecStatusType status = PQresultStatus(result);
    std::string message = PQresultErrorMessage(result);
    int changed = std::atoi(PQcmdTuples(result));
    PQclear(result);
    PQfinish(pg);
    INFO("sql: ", sql, " error: ", message);
    REQUIRE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK));
    return changed;
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  INFO("open ", database, ": ", sqlite3_errstr(rc));
  REQUIRE(rc == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
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

// Holds the database's write lock from this process, as an operator's session could, until
// Release() or destruction: reads go on, every write waits. On SQLite a BEGIN IMMEDIATE; on
// PostgreSQL every table of the schema locked IN EXCLUSIVE MODE. Fails the test when the
// lock cannot be taken within 10 s.
class DatabaseWriteLock {
 public:
  explicit DatabaseWriteLock(const std::string& database) {
    if (IsPostgresUri(database)) {
      pg_ = PQconnectdb(database.c_str());
      REQUIRE_MESSAGE(PQstatus(pg_) == CONNECTION_OK,
                      "cannot connect to " << database << ": " << PQerrorMessage(pg_));
      Postgres("SET lock_timeout = '10s'; BEGIN");
      std::string tables = Postgres(
          "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
          "WHERE schemaname = current_schema()");
      Postgres("LOCK TABLE " + tables + " IN EXCLUSIVE MODE");
      return;
    }
    REQUIRE(sqlite3_open_v2(database.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db_, 10'000);
    REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  ~DatabaseWriteLock() { Release(); }
  DatabaseWriteLock(const DatabaseWriteLock&) = delete;
  DatabaseWriteLock& operator=(const DatabaseWriteLock&) = delete;

  void Release() {
    if (pg_ != nullptr) {
      PQclear(PQexec(pg_, "ROLLBACK"));
      PQfinish(pg_);
      pg_ = nullptr;
    }
    if (db_ != nullptr) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      sqlite3_close(db_);
      db_ = nullptr;
    }
  }

 private:
  // Runs `sql` and returns the first value of its answer ("" when there is none).
  std::string Postgres(const std::string& sql) {
    PGresult* result = PQexec(pg_, sql.c_str());
    ExecStatusType status = PQresultStatus(result);
    std::string error = PQresultErrorMessage(result);
    std::string value = status == PGRES_TUPLES_OK && PQntuples(result) > 0 && PQnfields(result) > 0
                            ? PQgetvalue(result, 0, 0)
                            : "";
    PQclear(result);
    REQUIRE_MESSAGE((status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK),
                    sql << ": " << error);
    return value;
  }

  sqlite3* db_ = nullptr;
  PGconn* pg_ = nullptr;
};

}  // namespace sidecar::testing
