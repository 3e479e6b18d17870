#pragma once

// One libpq connection to PostgreSQL with a deadline on every call: a query waits on the
// socket with poll() and is abandoned (the connection dropped) when the deadline passes,
// so a server that hangs or a network that drops packets never blocks a request for longer
// than its budget. Not thread-safe: the pool (postgres_store.cc) lends it to one user at a
// time.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "codes/codes.h"
#include "common/result.h"

struct pg_conn;
struct pg_result;

namespace sidecar {

using SteadyTime = std::chrono::steady_clock::time_point;

// How to reach the server: a libpq URI (postgresql://... or postgres://...) and the password,
// which never appears in the URI (see config).
struct PgSettings {
  std::string uri;
  std::string password;  // empty: none, or libpq's own sources (PGPASSFILE, ~/.pgpass)
};

// One statement parameter, sent as text (NULL when absent) or as binary bytes (bytea).
struct PgParam {
  std::optional<std::string> value;
  bool binary = false;

  PgParam(std::string_view text) : value(std::string(text)) {}     // NOLINT: implicit by design
  PgParam(const char* text) : value(std::string(text)) {}          // NOLINT: implicit by design
  PgParam(const std::string& text) : value(text) {}                // NOLINT: implicit by design
  PgParam(std::int64_t number) : value(std::to_string(number)) {}  // NOLINT
  PgParam(int number) : value(std::to_string(number)) {}           // NOLINT
  PgParam(const Bytes& bytes)                                      // NOLINT
      : value(std::string(bytes.begin(), bytes.end())), binary(true) {}
  PgParam(const std::optional<std::int64_t>& number) {  // NOLINT
    if (number) value = std::to_string(*number);
  }
  PgParam(const std::optional<Bytes>& bytes) : binary(true) {  // NOLINT
    if (bytes) value = std::string(bytes->begin(), bytes->end());
  }
};

// The rows of one statement, every value as text. Owns the libpq result.
class PgRows {
 public:
  explicit PgRows(pg_result* result);
  ~PgRows();
  PgRows(PgRows&& other) noexcept;
  PgRows& operator=(PgRows&&) = delete;
  PgRows(const PgRows&) = delete;
  PgRows& operator=(const PgRows&) = delete;

  int size() const;
  bool IsNull(int row, int column) const;
  std::string Text(int row, int column) const;
  std::int64_t Int(int row, int column) const;
  std::optional<std::int64_t> OptionalInt(int row, int column) const;
  // A bytea column (text output, hex format).
  Bytes Blob(int row, int column) const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int changed() const;

 private:
  pg_result* result_;
};

// Errors carry one of these codes: "conflict" (a unique or check constraint),
// "storage_full" (the server's disk is full), "storage_retry" (a serialization failure or a
// deadlock: the transaction was rolled back and may be run again), and
// "storage_unavailable" for everything else (the server is down or restarting, the connection
// broke, the deadline passed, ...).
class PgConnection {
 public:
  // Connects, waiting at most until `deadline`, and sets the session up: UTC, and server-side
  // limits (lock_timeout, statement_timeout, idle_in_transaction_session_timeout) that free
  // locks even if this process stalls.
  static Result<std::unique_ptr<PgConnection>> Connect(const PgSettings& settings,
                                                       SteadyTime deadline);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement with parameters $1..$N, prepared once per connection and text.
  Result<PgRows> Query(const std::string& sql, const std::vector<PgParam>& params,
                       SteadyTime deadline, const char* context);
  // Runs a script of one or more statements without parameters (migrations, BEGIN, COMMIT).
  Status Script(const std::string& sql, SteadyTime deadline, const char* context);

  // False once the connection failed in a way that leaves it unusable or in an unknown
  // state (a broken socket, a deadline hit mid-query): the pool then drops it.
  bool usable() const;

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  // Waits for the result of the query just sent; gives up on it, and on the connection, when
  // `deadline` passes.
  Result<PgRows> Await(SteadyTime deadline, const char* context);
  Error Fail(pg_result* result, const char* context);

  pg_conn* conn_;
  bool broken_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

}  // namespace sidecar
