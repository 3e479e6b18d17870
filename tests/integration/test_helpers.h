#pragma once

// Checks shared by the integration tests. Included only by tests/integration/*.cc.

#include <doctest/doctest.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/postgres_server.h"
#include "support/sidecar_process.h"
#include "support/sql_reader.h"

namespace sidecar::testing {

inline constexpr const char* kAlicePhone = "+12065550100";
inline constexpr const char* kAlicePhoneMasked = "+1206*****00";
// A valid UK mobile (libphonenumber's example number); served only when GB is allowed.
inline constexpr const char* kBobUkPhone = "+447400123456";

// For a test about SQLite's own files or behaviour: true, after a message saying `why` the
// test does not apply (which ctest reads as a skip), when the suite runs on PostgreSQL. Use
// as `if (SkippedUnderPostgres("...")) return;` before the test starts a sidecar.
inline bool SkippedUnderPostgres(const std::string& why) {
  if (!TestStoreIsPostgres()) return false;
  MESSAGE("skipped under PostgreSQL: " << why);
  return true;
}

// For a test of what only the shared PostgreSQL store offers (sidecars sharing a database):
// true, after a message saying `why`, which ctest reads as a skip, when the suite runs on
// SQLite.
inline bool SkippedUnderSqlite(const std::string& why) {
  if (TestStoreIsPostgres()) return false;
  MESSAGE("skipped under SQLite: " << why);
  return true;
}

// Checks that SQLite finds the sidecar's database file intact; nothing on PostgreSQL, which
// keeps its own files whole.
inline void CheckSqliteFileIntact(const SidecarProcess& sidecar) {
  if (TestStoreIsPostgres()) return;
  SqlReader db(sidecar.database_path());
  CHECK(db.Rows("PRAGMA integrity_check") == std::vector<std::vector<std::string>>{{"ok"}});
}

// For a sidecar that was killed (or stopped with a send in flight), before it starts again.
// On PostgreSQL a sidecar takes over a send another one claimed only once the claim's lease
// (`[delivery] lease`, by default the longest send plus 30 s) has run out, since its owner may
// still be sending; a restarted sidecar is no exception. This ends the leases at once, as waiting
// them out would. On SQLite a restart takes every interrupted send over by itself: nothing to do.
inline void EndDeliveryLeases(const SidecarProcess& sidecar) {
  if (!TestStoreIsPostgres()) return;
  ExecSql(sidecar.database(), "UPDATE deliveries SET updated_at = 0 WHERE state = 'sending'");
}

// The log line of a sidecar taking over the sends a restart interrupted.
inline std::string InterruptedSendsLine() {
  return TestStoreIsPostgres() ? "msg=\"deliveries whose claim ran out taken over\""
                               : "msg=\"deliveries interrupted by a restart\"";
}

// `args`, a command line of the sidecar, with the flags of a new test database in the folder
// `dir` appended (see TestDatabaseFlags).
inline std::vector<std::string> WithTestDatabase(std::vector<std::string> args,
                                                 const std::string& dir) {
  for (const std::string& flag : TestDatabaseFlags(dir))
    args.push_back(flag);
  return args;
}

// Everything the sidecar's database holds, as text to search for what must never be stored
// (a code, a secret): on SQLite the bytes of the database file and of its -wal, -shm and
// -journal files; on PostgreSQL every row of every table of the schema as text.
inline std::string DatabaseText(const SidecarProcess& sidecar) {
  std::string text;
  if (!TestStoreIsPostgres()) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      text += ReadFileBytes(sidecar.database_path() + suffix);
    return text;
  }
  SqlReader db(sidecar.database());
  for (const auto& table : db.Rows(
           "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()")) {
    text += db.Rows("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM " + table[0] + " t")
                .at(0)
                .at(0);
  }
  return text;
}

// The [limits] keys that turn every send limit and the pumping guard off, for tests that
// create many challenges quickly (see SidecarOptions::limits).
inline std::map<std::string, std::string> NoSendLimits() {
  return {{"user_sends", "[]"},   {"phone_sends", "[]"},  {"ip_sends", "[]"},
          {"region_sends", "[]"}, {"global_sends", "[]"}, {"pumping.enabled", "false"}};
}

// Options for a sidecar with a TOML configuration and extra serve flags.
inline SidecarOptions WithConfig(std::string toml, std::vector<std::string> extra_args = {}) {
  SidecarOptions options;
  options.config_toml = std::move(toml);
  options.extra_args = std::move(extra_args);
  return options;
}

// Options for a sidecar whose abuse limits are all off (see SidecarOptions::limits_off),
// for tests that are about something else and would trip over them.
inline SidecarOptions LimitsOff(std::string toml = "", std::vector<std::string> extra_args = {}) {
  SidecarOptions options = WithConfig(std::move(toml), std::move(extra_args));
  options.limits_off = true;
  return options;
}

// Options for a sidecar with the product's default limits except for `limits` (keys of
// [limits] with TOML values, see SidecarOptions::limits).
inline SidecarOptions WithLimits(std::map<std::string, std::string> limits, std::string toml = "") {
  SidecarOptions options = WithConfig(std::move(toml));
  options.limits = std::move(limits);
  return options;
}

// A client talking HTTP over the Unix socket at `path`, with the same short timeouts as
// SidecarProcess::client().
inline httplib::Client UnixClient(const std::string& path) {
  httplib::Client c(path, 80);
  c.set_address_family(AF_UNIX);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(10));
  c.set_write_timeout(std::chrono::seconds(10));
  return c;
}

inline std::string ChallengePath(const std::string& id) {
  return "/v1/challenges/" + id;
}

// A well-formed challenge id ("ch_" and 26 base32 characters) that was never issued.
inline std::string UnissuedChallengeId() {
  return "ch_" + std::string(26, 'a');
}

inline bool IsRfc3339Utc(const std::string& text) {
  static const std::regex kShape(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$)");
  return std::regex_match(text, kShape);
}

// Seconds since the epoch for "YYYY-MM-DDTHH:MM:SSZ", or -1.
inline long long ParseRfc3339Seconds(const std::string& text) {
  std::tm tm{};
  if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return -1;
  return static_cast<long long>(::timegm(&tm));
}

// A problem answer of any status: the status, application/problem+json, and a body whose
// "code", "status" and "type" agree.
inline void CheckProblemAnswer(const HttpReply& reply, int status, const std::string& code) {
  INFO("reply: ", reply.describe());
  REQUIRE(reply.ok());
  CHECK(reply.status == status);
  CHECK(reply.content_type.rfind("application/problem+json", 0) == 0);
  REQUIRE(reply.is_json_object());
  CHECK(reply.str("code") == code);
  CHECK(reply.integer("status") == status);
  CHECK(reply.str("type") == "urn:otp-sidecar:problem:" + code);
  CHECK(!reply.str("title").empty());
}

// A problem answer for bad input or a refusal: as CheckProblemAnswer, and never a 5xx.
inline void CheckProblem(const HttpReply& reply, int status, const std::string& code) {
  CheckProblemAnswer(reply, status, code);
  INFO("reply: ", reply.describe());
  CHECK(reply.status < 500);
}

// A refusal by a limit: 429 problem+json whose code names the limit, with a Retry-After
// header of 1..`max_seconds` whole seconds that matches "retry_after" in the body. Returns
// the Retry-After seconds (0 when it is missing or malformed).
inline long long CheckRefusal(const HttpReply& reply, const std::string& limit,
                              long long max_seconds) {
  CheckProblem(reply, 429, limit);
  INFO("reply: ", reply.describe());
  std::string header = reply.header("Retry-After");
  static const std::regex kSeconds("^[0-9]{1,9}$");
  CHECK(std::regex_match(header, kSeconds));
  if (!std::regex_match(header, kSeconds)) return 0;
  long long seconds = std::stoll(header);
  CHECK(seconds >= 1);
  CHECK(seconds <= max_seconds);
  CHECK(reply.integer("retry_after") == seconds);
  return seconds;
}

// POST /v1/challenges/{id}/resend with `body`, repeated while it is refused by the resend
// cooldown (the smallest configurable cooldown is one second) until `timeout`; returns the
// last reply.
inline HttpReply ResendWhenAllowed(httplib::Client& client, const std::string& id,
                                   const std::string& body = "", Millis timeout = Millis(5000)) {
  HttpReply reply;
  PollUntil(
      [&] {
        reply = PostRaw(client, "/v1/challenges/" + id + "/resend", body);
        return !(reply.status == 429 && reply.str("code") == "resend_cooldown");
      },
      timeout, Millis(50));
  return reply;
}

// POST /v1/challenges for `user`; REQUIREs a 202 and returns the challenge id.
inline std::string CreateChallenge(httplib::Client& client, const std::string& user,
                                   const std::string& phone = kAlicePhone) {
  HttpReply reply = PostJson(client, "/v1/challenges", {{"user", user}, {"phone", phone}});
  INFO("create reply: ", reply.describe());
  REQUIRE(reply.status == 202);
  std::string id = reply.str("challenge_id");
  REQUIRE(!id.empty());
  return id;
}

inline HttpReply VerifyById(httplib::Client& client, const std::string& id,
                            const nlohmann::json& code) {
  return PostJson(client, ChallengePath(id) + "/verify", {{"code", code}});
}

inline HttpReply VerifyByUser(httplib::Client& client, const std::string& user,
                              const nlohmann::json& code) {
  return PostJson(client, "/v1/verify", {{"user", user}, {"code", code}});
}

// A code of the same length that differs from `code` in its last digit.
inline std::string WrongCode(const std::string& code) {
  std::string wrong = code;
  wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
  return wrong;
}

// The challenge's status as GET reports it, or "" when the GET failed.
inline std::string StatusOf(httplib::Client& client, const std::string& id) {
  HttpReply reply = Get(client, ChallengePath(id));
  return reply.status == 200 ? reply.str("status") : "";
}

// The lines of `text`, without their newlines.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// Every line of `log` is one logfmt event: ts, level, subsystem and msg first, then
// lower-case keys with plain or quoted values.
inline void CheckLogLines(const std::string& log) {
  static const std::regex kLine(
      R"(^ts=\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z level=(debug|info|warn|error) )"
      R"(subsystem=[a-z]+ msg=("[^"]*"|\S+)( [a-z_]+=("([^"\\]|\\.)*"|[^ "]+))*$)");
  for (const std::string& line : Lines(log)) {
    INFO("log line: ", line);
    CHECK(std::regex_match(line, kLine));
  }
}

}  // namespace sidecar::testing
