#include "store/pg_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace sidecar {
namespace {

// Server-side limits for every session, just past the 5 s budget of a transaction. They back
// the client's deadlines up: should this process stall (a frozen host) or die
// mid-transaction, the server releases its locks within seconds, so that the keys it held
// (a user, a phone, the global limit) do not block every other sidecar for long.
constexpr const char* kSessionSetup =
    "SET TIME ZONE 'UTC'; SET lock_timeout = '5s'; SET statement_timeout = '6s'; "
    "SET idle_in_transaction_session_timeout = '6s'; SET client_min_messages = 'warning'";

// libpq prints the server's notices and warnings on stderr by default; they go to the log
// instead, in its format.
void LogNotice(void*, const char* message) {
  std::string text = message;
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  Log(LogLevel::kWarn, "store", "PostgreSQL says", {{"notice", text}});
}

int MillisLeft(SteadyTime deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
}

// Waits until `socket` is ready for `events`; false when the deadline passed first.
bool WaitForSocket(int socket, short events, SteadyTime deadline) {
  while (true) {
    int left = MillisLeft(deadline);
    pollfd fd{socket, events, 0};
    int ready = ::poll(&fd, 1, left);
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

std::string ConnectionMessage(PGconn* conn) {
  std::string message = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return message.empty() ? "connection failed" : message;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

PgRows::PgRows(pg_result* result) : result_(result) {}

PgRows::~PgRows() {
  if (result_ != nullptr) PQclear(result_);
}

PgRows::PgRows(PgRows&& other) noexcept : result_(other.result_) {
  other.result_ = nullptr;
}

int PgRows::size() const {
  return result_ == nullptr ? 0 : PQntuples(result_);
}

bool PgRows::IsNull(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

std::string PgRows::Text(int row, int column) const {
  return std::string(PQgetvalue(result_, row, column),
                     static_cast<std::size_t>(PQgetlength(result_, row, column)));
}

std::int64_t PgRows::Int(int row, int column) const {
  return std::strtoll(PQgetvalue(result_, row, column), nullptr, 10);
}

std::optional<std::int64_t> PgRows::OptionalInt(int row, int column) const {
  if (IsNull(row, column)) return std::nullopt;
  return Int(row, column);
}

Bytes PgRows::Blob(int row, int column) const {
  // bytea's text output is "\x" followed by two hex digits per byte.
  const char* text = PQgetvalue(result_, row, column);
  std::size_t length = static_cast<std::size_t>(PQgetlength(result_, row, column));
  Bytes bytes;
  if (length < 2 || text[0] != '\\' || text[1] != 'x') return bytes;
  bytes.reserve((length - 2) / 2);
  for (std::size_t i = 2; i + 1 < length; i += 2) {
    int high = HexValue(text[i]);
    int low = HexValue(text[i + 1]);
    if (high < 0 || low < 0) return Bytes();
    bytes.push_back(static_cast<unsigned char>(high * 16 + low));
  }
  return bytes;
}

int PgRows::changed() const {
  const char* count = result_ == nullptr ? "" : PQcmdTuples(result_);
  return *count == '\0' ? 0 : std::atoi(count);
}

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const PgSettings& settings,
                                                            SteadyTime deadline) {
  // Later keywords override earlier ones, and the URI's own settings override the
  // defaults before it; the password is given last so the URI cannot hide another.
  std::vector<const char*> keys = {"application_name", "connect_timeout", "dbname"};
  std::vector<const char*> values = {"otp-sidecar", "5", settings.uri.c_str()};
  if (!settings.password.empty()) {
    keys.push_back("password");
    values.push_back(settings.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  PGconn* conn = PQconnectStartParams(keys.data(), values.data(), 1);
  PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
  while (conn != nullptr && PQstatus(conn) != CONNECTION_BAD && polling != PGRES_POLLING_OK &&
         polling != PGRES_POLLING_FAILED) {
    short events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!WaitForSocket(PQsocket(conn), events, deadline)) {
      PQfinish(conn);
      return MakeError("storage_unavailable", "connecting to PostgreSQL: timed out");
    }
    polling = PQconnectPoll(conn);
  }
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string message = ConnectionMessage(conn);
    PQfinish(conn);
    return MakeError("storage_unavailable", "connecting to PostgreSQL: " + message);
  }
  PQsetNoticeProcessor(conn, LogNotice, nullptr);
  if (PQsetnonblocking(conn, 1) != 0) {
    PQfinish(conn);
    return MakeError("storage_unavailable", "connecting to PostgreSQL: cannot set non-blocking");
  }

  std::unique_ptr<PgConnection> connection(new PgConnection(conn));
  Status setup = connection->Script(kSessionSetup, deadline, "setting the session up");
  if (!setup.ok()) return setup.error();
  return connection;
}

PgConnection::~PgConnection() {
  PQfinish(conn_);
}

bool PgConnection::usable() const {
  return !broken_ && PQstatus(conn_) == CONNECTION_OK;
}

Result<PgRows> PgConnection::Query(const std::string& sql, const std::vector<PgParam>& params,
                                   SteadyTime deadline, const char* context) {
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size());
    if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr) ==
        0) {
      return Fail(nullptr, context);
    }
    Result<PgRows> prepared = Await(deadline, context);
    if (!prepared.ok()) return prepared.error();
    found = prepared_.emplace(sql, name).first;
  }

  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const PgParam& param : params) {
    values.push_back(param.value ? param.value->data() : nullptr);
    lengths.push_back(param.value ? static_cast<int>(param.value->size()) : 0);
    formats.push_back(param.binary ? 1 : 0);
  }
  if (PQsendQueryPrepared(conn_, found->second.c_str(), static_cast<int>(params.size()),
                          values.data(), lengths.data(), formats.data(), 0) == 0) {
    return Fail(nullptr, context);
  }
  return Await(deadline, context);
}

Status PgConnection::Script(const std::string& sql, SteadyTime deadline, const char* context) {
  if (PQsendQuery(conn_, sql.c_str()) == 0) return Fail(nullptr, context);
  Result<PgRows> done = Await(deadline, context);
  if (!done.ok()) return done.error();
  return OkStatus();
}

Result<PgRows> PgConnection::Await(SteadyTime deadline, const char* context) {
  // Sends what libpq still buffers, then collects every result of the query; the first
  // error wins, else the last result is the answer.
  int flushed;
  while ((flushed = PQflush(conn_)) == 1) {
    if (!WaitForSocket(PQsocket(conn_), POLLOUT | POLLIN, deadline)) break;
  }

  PGresult* answer = nullptr;
  bool failed = false;
  while (flushed == 0) {
    // A server that answers and then closes the connection (a restart, a terminated
    // session) leaves a complete answer in the buffer: that answer counts, and only an
    // answer cut short is lost.
    if (PQconsumeInput(conn_) == 0 && PQisBusy(conn_) != 0) break;
    if (PQisBusy(conn_) != 0) {
      if (!WaitForSocket(PQsocket(conn_), POLLIN, deadline)) break;
      continue;
    }
    PGresult* result = PQgetResult(conn_);
    if (result == nullptr) {
      if (failed) return Fail(answer, context);
      if (answer == nullptr) return Fail(nullptr, context);
      return PgRows(answer);
    }
    if (failed) {
      PQclear(result);
      continue;
    }
    if (answer != nullptr) PQclear(answer);
    answer = result;
    ExecStatusType status = PQresultStatus(result);
    failed = status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK;
  }

  // The deadline passed or the connection broke: what the server does with the query now is
  // unknown, so the connection is never used again. No cancel request is sent: it would
  // open a new connection without a timeout, to a server that may be unreachable. The
  // server ends the statement by itself (lock_timeout, statement_timeout) and the session
  // once it sees the socket closed.
  if (answer != nullptr) PQclear(answer);
  bool timed_out = PQstatus(conn_) == CONNECTION_OK && MillisLeft(deadline) == 0;
  broken_ = true;
  if (timed_out) {
    return MakeError("storage_unavailable",
                     std::string(context) + ": PostgreSQL did not answer in time");
  }
  return MakeError(
      "storage_unavailable",
      std::string(context) + ": connection to PostgreSQL lost: " + ConnectionMessage(conn_));
}

Error PgConnection::Fail(pg_result* result, const char* context) {
  std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  if (result != nullptr) PQclear(result);
  if (message.empty()) message = ConnectionMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
    message.pop_back();
  std::string what = std::string(context) + ": " + message;

  if (PQstatus(conn_) != CONNECTION_OK || sqlstate.rfind("08", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0) {
    broken_ = true;
    return MakeError("storage_unavailable", what);
  }
  if (sqlstate.rfind("23", 0) == 0) return MakeError("conflict", what);
  if (sqlstate == "40001" || sqlstate == "40P01") return MakeError("storage_retry", what);
  if (sqlstate == "53100") return MakeError("storage_full", what);
  return MakeError("storage_unavailable", what);
}

}  // namespace sidecar
