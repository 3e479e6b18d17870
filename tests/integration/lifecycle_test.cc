// The process around the API: crashes and restarts, a taken port, signals, what reaches the
// logs and the database, and the command line.

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "integration/test_helpers.h"

namespace sidecar::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string DeliveryState(httplib::Client& client, const std::string& id) {
  HttpReply view = Get(client, ChallengePath(id));
  if (view.status != 200 || !view.json.contains("delivery")) return "";
  return view.json["delivery"].value("state", "");
}

TEST_CASE("a challenge made before kill -9 is still verifiable after a restart") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  CHECK(VerifyById(client, id, WrongCode(code)).integer("attempts_remaining") == 4);
  int first_port = sidecar.port();

  sidecar.Kill9();
  CHECK_FALSE(sidecar.running());
  CHECK_FALSE(Get(client, "/healthz").ok());  // nothing answers on the old port

  sidecar.Restart();
  httplib::Client again = sidecar.client();
  INFO("ports: ", first_port, " then ", sidecar.port());
  HttpReply view = Get(again, ChallengePath(id));
  CHECK(view.str("status") == "pending");
  CHECK(view.integer("attempts_remaining") == 4);  // the wrong attempt was durable

  HttpReply approved = VerifyById(again, id, code);
  INFO("verify after restart: ", approved.describe());
  CHECK(approved.str("status") == "approved");
  CHECK(sidecar.SmsFor(id).size() == 1);  // a sent SMS is not sent again
  CHECK(sidecar.Stop() == 0);
}

TEST_CASE("a challenge created just before kill -9 is delivered after the restart") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  sidecar.Kill9();  // at once: the delivery may well still be queued

  sidecar.Restart();
  std::vector<SmsRecord> sms = sidecar.WaitForSmsCount(id, 1);
  for (const SmsRecord& record : sms) {
    CHECK(record.to == kAlicePhone);
    CHECK(record.code == sms[0].code);
  }
  httplib::Client again = sidecar.client();
  CHECK(PollUntil([&] { return DeliveryState(again, id) == "sent"; }, Millis(5000)));
  HttpReply approved = VerifyById(again, id, sms[0].code);
  INFO("verify after restart: ", approved.describe());
  CHECK(approved.str("status") == "approved");
}

TEST_CASE("deliveries left queued or sending by a crash are sent after the restart") {
  SidecarProcess sidecar(WithConfig("[phone]\nallowed_regions = [\"US\", \"GB\"]\n"));
  httplib::Client client = sidecar.client();
  std::string alice = CreateChallenge(client, "alice");
  std::string bob = CreateChallenge(client, "bob", kBobUkPhone);
  std::string alice_code = sidecar.WaitForSms(alice);
  std::string bob_code = sidecar.WaitForSms(bob);
  REQUIRE(PollUntil([&] { return DeliveryState(client, alice) == "sent"; }, Millis(5000)));
  REQUIRE(PollUntil([&] { return DeliveryState(client, bob) == "sent"; }, Millis(5000)));
  REQUIRE(sidecar.Stop() == 0);

  // As if the sidecar had died after claiming alice's delivery (before the provider
  // answered) and before it ever claimed bob's.
  // The claim was made long ago: a claim's lease (which PostgreSQL's sidecars keep, so that
  // another takes a send over only when its owner is gone) has run out.
  REQUIRE(ExecSql(sidecar.database(),
                  "UPDATE deliveries SET state = 'sending', sent_at = NULL, updated_at = 0 "
                  "WHERE challenge_id = '" +
                      alice + "'") > 0);
  REQUIRE(ExecSql(sidecar.database(),
                  "UPDATE deliveries SET state = 'queued', sent_at = NULL, next_attempt_at = 0 "
                  "WHERE challenge_id = '" +
                      bob + "'") > 0);

  sidecar.Restart();
  std::vector<SmsRecord> alice_sms = sidecar.WaitForSmsCount(alice, 2);
  std::vector<SmsRecord> bob_sms = sidecar.WaitForSmsCount(bob, 2);
  CHECK(alice_sms.back().code == alice_code);
  CHECK(bob_sms.back().code == bob_code);
  CHECK(bob_sms.back().to == kBobUkPhone);
  CHECK(sidecar.stderr_text().find("msg=\"deliveries interrupted by a restart\" requeued=1") !=
        std::string::npos);

  httplib::Client again = sidecar.client();
  CHECK(PollUntil([&] { return DeliveryState(again, alice) == "sent"; }, Millis(5000)));
  CHECK(PollUntil([&] { return DeliveryState(again, bob) == "sent"; }, Millis(5000)));
  CHECK(VerifyById(again, alice, alice_code).str("status") == "approved");
  CHECK(VerifyById(again, bob, bob_code).str("status") == "approved");

  // Each was sent exactly once more, not in a loop.
  CHECK(sidecar.SmsFor(alice).size() == 2);
  CHECK(sidecar.SmsFor(bob).size() == 2);
}

TEST_CASE("every acknowledged create survives kill -9 in the middle of a burst") {
  // Hundreds of creates a second to one phone: every send limit would stop the burst.
  SidecarProcess sidecar(WithLimits(NoSendLimits()));
  constexpr int kWriters = 6;
  std::mutex mutex;
  std::vector<std::string> acknowledged;  // ids answered 202 before the kill
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      httplib::Client client = sidecar.client();
      client.set_read_timeout(std::chrono::seconds(2));
      for (int n = 0; !stop.load() && n < 2000; ++n) {
        HttpReply reply =
            PostJson(client, "/v1/challenges",
                     {{"user", "writer" + std::to_string(w) + "-" + std::to_string(n % 3)},
                      {"phone", kAlicePhone}});
        if (!reply.ok()) break;  // the server is gone
        if (reply.status == 202) {
          std::lock_guard<std::mutex> lock(mutex);
          acknowledged.push_back(reply.str("challenge_id"));
        }
      }
    });
  }
  // Kill once a good number of writes has been acknowledged, while writes are in flight.
  bool enough = PollUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return acknowledged.size() >= 60;
      },
      Millis(10'000), Millis(2));
  sidecar.Kill9();
  stop.store(true);
  for (std::thread& writer : writers)
    writer.join();
  REQUIRE(enough);

  // The file is intact; the restart shows every acknowledged challenge is there.
  CheckSqliteFileIntact(sidecar);

  sidecar.Restart();
  httplib::Client client = sidecar.client();
  std::map<std::string, int> by_status;
  for (const std::string& id : acknowledged) {
    HttpReply view = Get(client, ChallengePath(id));
    INFO("acknowledged ", id, ": ", view.describe());
    CHECK(view.status == 200);
    by_status[view.str("status")]++;
  }
  INFO("acknowledged: ", acknowledged.size());
  CHECK(by_status["pending"] + by_status["superseded"] == static_cast<int>(acknowledged.size()));
  // Each user has at most one pending challenge.
  CHECK(by_status["pending"] <= kWriters * 3);
}

TEST_CASE("a failed delivery is retried and sent once the provider works again") {
  TempDir outbox_parent;
  std::string outbox = outbox_parent.File("later");
  // serve refuses to start without a folder it can write in, so the folder goes away only
  // once the sidecar runs, as if an operator had removed it.
  std::filesystem::create_directory(outbox);
  SidecarProcess sidecar(WithConfig("", {"--sms-file", outbox + "/sms.jsonl"}));
  std::filesystem::remove(outbox);
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");

  // The first attempt fails (no such folder): the delivery goes back to the queue.
  HttpReply view;
  bool retried = PollUntil(
      [&] {
        view = Get(client, ChallengePath(id));
        const nlohmann::json& d = view.json.value("delivery", nlohmann::json::object());
        return d.value("attempts", 0) >= 1 && d.value("state", "") == "queued" &&
               d["error"].is_string();
      },
      Millis(5000));
  INFO("GET: ", view.describe());
  REQUIRE(retried);
  CHECK(view.str("status") == "pending");
  CHECK(view.json["delivery"]["error"].get<std::string>().find("later/sms.jsonl") !=
        std::string::npos);
  CHECK(view.json["delivery"]["sent_at"].is_null());
  // The retry is logged after its row is written, so the line may lag behind the GET.
  CHECK(PollUntil(
      [&] {
        return sidecar.stderr_text().find("subsystem=delivery msg=retry") != std::string::npos;
      },
      Millis(5000)));

  std::filesystem::create_directory(outbox);
  std::string text;
  bool delivered = PollUntil(
      [&] {
        text = ReadFileBytes(outbox + "/sms.jsonl");
        return !text.empty();
      },
      Millis(10'000), Millis(20));
  REQUIRE(delivered);
  nlohmann::json line = nlohmann::json::parse(text.substr(0, text.find('\n')));
  CHECK(line["challenge_id"] == id);
  std::string body = line["body"];
  std::string code = body.substr(0, body.find(' '));
  CHECK(PollUntil([&] { return DeliveryState(client, id) == "sent"; }, Millis(5000)));
  CHECK(Get(client, ChallengePath(id)).json["delivery"].value("attempts", 0) >= 2);
  CHECK(VerifyById(client, id, code).str("status") == "approved");
}

TEST_CASE("a second sidecar on a taken port fails clearly while the first keeps serving") {
  SidecarProcess first;
  httplib::Client client = first.client();

  TempDir other;
  ExitResult second =
      RunSidecarToExit(WithTestDatabase({"serve", "--listen", first.address(), "--sms-provider",
                                         "file", "--sms-file", other.File("sms.jsonl")},
                                        other.path()),
                       other.path());
  INFO("second stderr: ", second.err);
  CHECK_FALSE(second.timed_out);
  CHECK(second.exit_code != 0);
  CHECK(second.err.find(first.address()) != std::string::npos);
  CHECK(second.err.find("already in use") != std::string::npos);
  CHECK(second.err.find("msg=listening") == std::string::npos);

  CHECK(first.running());
  CHECK(Get(client, "/healthz").status == 200);
  std::string id = CreateChallenge(client, "alice");
  CHECK(VerifyById(client, id, first.WaitForSms(id)).str("status") == "approved");
  CHECK(first.Stop() == 0);
}

TEST_CASE("SIGTERM stops the sidecar cleanly with status 0") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  sidecar.WaitForSms(id);
  // Leave an idle keep-alive connection open: it must not hold up the stop.
  REQUIRE(Get(client, ChallengePath(id)).status == 200);

  auto started = SteadyClock::now();
  int status = sidecar.Stop(Millis(5000));
  auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - started);
  INFO("stop took ", took.count(), " ms; stderr:\n", sidecar.stderr_text());
  CHECK(status == 0);
  CHECK(took < Millis(5000));
  std::string err = sidecar.stderr_text();
  CHECK(err.find("subsystem=main msg=stopping signal=TERM") != std::string::npos);
  CHECK(err.find("subsystem=main msg=stopped") != std::string::npos);

  // The database is consistent afterwards: a restart serves the same challenge.
  sidecar.Restart();
  httplib::Client again = sidecar.client();
  CHECK(StatusOf(again, id) == "pending");
}

TEST_CASE("SIGINT also stops cleanly, and SIGHUP does not stop") {
  SidecarProcess sidecar;
  sidecar.Signal(SIGHUP);
  REQUIRE(
      PollUntil([&] { return sidecar.stderr_text().find("SIGHUP received") != std::string::npos; },
                Millis(5000)));
  httplib::Client client = sidecar.client();
  CHECK(Get(client, "/healthz").status == 200);

  sidecar.Signal(SIGINT);
  int code = sidecar.WaitForExit(Millis(5000));
  CHECK(code == 0);
  CHECK(sidecar.stderr_text().find("msg=stopping signal=INT") != std::string::npos);
  CHECK(sidecar.stderr_text().find("msg=stopped") != std::string::npos);
}

TEST_CASE("logs and the database never hold the code, and logs mask the phone") {
  SidecarOptions options = WithConfig("[code]\nlength = 10\n", {"--log-level", "debug"});
  options.limits = {{"resend_cooldown", "\"1s\""}};  // the resend below waits it out
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();

  std::string id = CreateChallenge(client, "alice");
  std::string code = sidecar.WaitForSms(id);
  REQUIRE(code.size() == 10);
  CHECK(VerifyById(client, id, WrongCode(code)).str("status") == "denied");
  REQUIRE(ResendWhenAllowed(client, id).status == 202);
  REQUIRE(sidecar.WaitForSmsCount(id, 2).back().code == code);
  REQUIRE(Get(client, ChallengePath(id)).status == 200);
  CHECK(VerifyByUser(client, "alice", code).str("status") == "approved");

  // One left pending, so its sealed code is in the database right now.
  std::string pending = CreateChallenge(client, "bob");
  std::string pending_code = sidecar.WaitForSms(pending);
  REQUIRE(pending_code.size() == 10);
  REQUIRE(PollUntil([&] { return DeliveryState(client, pending) == "sent"; }, Millis(5000)));

  // Paths that try to forge log lines or fields are escaped onto one line.
  CheckProblem(Get(client, "/v1/x%0Ats=1%20level=error%20subsystem=main%20msg=forged"), 404,
               "not_found");
  CheckProblem(Get(client, "/v1/%22quoted%22%20code=000000"), 404, "not_found");
  httplib::Headers request_id = {{"X-Request-Id", "trace-123_abc.9"}};
  httplib::Result traced = client.Get("/healthz", request_id);
  REQUIRE(traced);
  CHECK(traced->get_header_value("X-Request-Id") == "trace-123_abc.9");
  httplib::Result untrusted = client.Get("/healthz", {{"X-Request-Id", "a\"b level=error"}});
  REQUIRE(untrusted);
  CHECK(
      std::regex_match(untrusted->get_header_value("X-Request-Id"), std::regex("^[0-9a-f]{16}$")));

  auto check_files = [&](const char* when) {
    std::string stored = DatabaseText(sidecar);
    INFO(when, ": the database (", stored.size(), " bytes)");
    CHECK(stored.size() > 0);
    CHECK(stored.find(code) == std::string::npos);
    CHECK(stored.find(pending_code) == std::string::npos);
    std::string err = sidecar.stderr_text();
    std::string out = sidecar.stdout_text();
    INFO(when, ": stderr:\n", err);
    CHECK(err.find(code) == std::string::npos);
    CHECK(err.find(pending_code) == std::string::npos);
    CHECK(out.find(code) == std::string::npos);
    CHECK(out.find(pending_code) == std::string::npos);
  };
  check_files("while serving");
  REQUIRE(sidecar.Stop() == 0);
  check_files("after stop");

  std::string err = sidecar.stderr_text();
  CHECK(err.find("2065550100") == std::string::npos);
  CHECK(err.find(kAlicePhoneMasked) != std::string::npos);
  std::vector<std::string> lines = Lines(err);
  CHECK(lines.size() >= 8);
  CheckLogLines(err);
  CHECK(err.find("subsystem=http msg=request") != std::string::npos);
  CHECK(err.find("subsystem=delivery msg=sent") != std::string::npos);
  CHECK(err.find("request_id=trace-123_abc.9") != std::string::npos);
  for (const std::string& line : lines) {
    CHECK(line.rfind("ts=1 ", 0) != 0);  // the forged line never starts a line
  }
}

TEST_CASE("the key file and the SMS file are private to the owner") {
  SidecarProcess sidecar;
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  sidecar.WaitForSms(id);

  struct stat st {};
  REQUIRE(::stat(sidecar.key_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(sidecar.sms_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::string key = ReadFileBytes(sidecar.key_path());
  CHECK(std::regex_match(key, std::regex("^[0-9a-f]{64}\n$")));
}

TEST_CASE("version and help exit 0") {
  TempDir dir;
  ExitResult version = RunSidecarToExit({"version"}, dir.path());
  CHECK(version.exit_code == 0);
  CHECK(
      std::regex_match(version.out, std::regex(R"(^otp-sidecar \d+\.\d+\.\d+ \(schema \d+\)\n$)")));
  ExitResult dashed = RunSidecarToExit({"--version"}, dir.path());
  CHECK(dashed.exit_code == 0);
  CHECK(dashed.out == version.out);

  struct Help {
    std::vector<std::string> args;
    std::string starts;
  };
  std::vector<Help> helps = {
      {{}, "usage: otp-sidecar COMMAND"},
      {{"--help"}, "usage: otp-sidecar COMMAND"},
      {{"-h"}, "usage: otp-sidecar COMMAND"},
      {{"help"}, "usage: otp-sidecar COMMAND"},
      {{"serve", "--help"}, "usage: otp-sidecar serve"},
      {{"serve", "--listen", "127.0.0.1:0", "--help"}, "usage: otp-sidecar serve"},
      {{"help", "serve"}, "usage: otp-sidecar serve"},
      {{"migrate", "--help"}, "usage: otp-sidecar migrate"},
      {{"version", "--help"}, "usage: otp-sidecar version"},
  };
  for (const Help& help : helps) {
    ExitResult run = RunSidecarToExit(help.args, dir.path());
    std::string joined;
    for (const auto& a : help.args)
      joined += a + " ";
    INFO("args: ", joined, " out: ", run.out, " err: ", run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out.rfind(help.starts, 0) == 0);
  }
  // --help never starts a server nor creates files.
  CHECK_FALSE(std::filesystem::exists(dir.File("otp-sidecar.db")));
  CHECK_FALSE(std::filesystem::exists(dir.File("otp-sidecar.key")));
}

TEST_CASE("bad command lines exit 2 and name the problem") {
  TempDir dir;
  struct Bad {
    std::vector<std::string> args;
    std::string mentions;
  };
  std::vector<Bad> cases = {
      {{"serve", "--bogus"}, "--bogus"},
      {{"serve", "--listen"}, "--listen"},
      {{"serve", "--listen="}, "--listen"},
      {{"serve", "--sms-provider", "carrier-pigeon"}, "--sms-provider"},
      {{"serve", "--log-level", "loud", "--database", dir.File("x.db")}, "--log-level"},
      {{"migrate"}, "--database"},
      {{"migrate", "--listen", "127.0.0.1:0"}, "--listen"},
      {{"version", "extra"}, "version"},
      {{"frobnicate"}, "frobnicate"},
      {{"serve", "--listen", "0.0.0.0:0", "--database", dir.File("x.db")}, "loopback"},
      {{"serve", "--listen", "example.com:80", "--database", dir.File("x.db")}, "listen"},
      {{"serve", "--listen", "127.0.0.1:99999", "--database", dir.File("x.db")}, "port"},
      {{"serve", "--config", dir.File("missing.toml")}, "missing.toml"},
  };
  for (const Bad& bad : cases) {
    ExitResult run = RunSidecarToExit(bad.args, dir.path());
    std::string joined;
    for (const auto& a : bad.args)
      joined += a + " ";
    INFO("args: ", joined, " err: ", run.err);
    CHECK_FALSE(run.timed_out);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find(bad.mentions) != std::string::npos);
    CHECK(run.err.find("msg=listening") == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir.File("x.db")));
}

TEST_CASE("a configuration with an unknown key or a bad value exits 2 naming key and line") {
  TempDir dir;
  std::string config = dir.File("config.toml");
  WriteFileBytes(config,
                 "# otp-sidecar test configuration\n"
                 "app_name = \"Test\"\n"
                 "colour = \"blue\"\n"
                 "\n"
                 "[code]\n"
                 "lenght = 6\n"
                 "ttl = \"forever\"\n"
                 "\n"
                 "[sms]\n"
                 "providers = [\"carrier-pigeon\"]\n");
  ExitResult run = RunSidecarToExit(
      {"serve", "--config", config, "--listen", "127.0.0.1:0", "--database", dir.File("otp.db")},
      dir.path());
  INFO("stderr: ", run.err);
  CHECK(run.exit_code == 2);
  CHECK(run.err.find("config.toml:3: colour: unknown key") != std::string::npos);
  CHECK(run.err.find("config.toml:6: code.lenght: unknown key") != std::string::npos);
  CHECK(run.err.find("config.toml:7: code.ttl:") != std::string::npos);
  CHECK(run.err.find("carrier-pigeon") != std::string::npos);
  CHECK(run.err.find("msg=listening") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.File("otp.db")));

  WriteFileBytes(config, "[code]\nlength = 4\n");
  ExitResult short_code = RunSidecarToExit(
      {"serve", "--config", config, "--listen", "127.0.0.1:0", "--database", dir.File("otp.db")},
      dir.path());
  INFO("stderr: ", short_code.err);
  CHECK(short_code.exit_code == 2);
  CHECK(short_code.err.find("config.toml:2: code.length:") != std::string::npos);

  WriteFileBytes(config, "listen = \"127.0.0.1:0\"\n[code\nlength = 6\n");
  ExitResult syntax = RunSidecarToExit({"serve", "--config", config}, dir.path());
  INFO("stderr: ", syntax.err);
  CHECK(syntax.exit_code == 2);
  CHECK(syntax.err.find("config.toml:2") != std::string::npos);
}

TEST_CASE("migrate creates the database, prints the schema version and is repeatable") {
  TempDir dir;
  bool postgres = TestStoreIsPostgres();
  std::string database = postgres ? NewTestDatabase(dir.path()) : dir.File("fresh.db");
  ExitResult first = RunSidecarToExit({"migrate", "--database", database}, dir.path());
  INFO("out: ", first.out, " err: ", first.err);
  CHECK(first.exit_code == 0);
  std::smatch match;
  REQUIRE(std::regex_match(first.out, match, std::regex("^(.*): schema version ([0-9]+)\n$")));
  CHECK(match[1].str() == database);
  CHECK(std::stoi(match[2].str()) >= 1);
  if (!postgres) CHECK(std::filesystem::exists(database));

  ExitResult second = RunSidecarToExit({"migrate", "--database=" + database}, dir.path());
  CHECK(second.exit_code == 0);
  CHECK(second.out == first.out);

  // `version` names the SQLite schema; PostgreSQL's migrations are numbered on their own.
  ExitResult version = RunSidecarToExit({"version"}, dir.path());
  if (!postgres) CHECK(version.out.find("(schema " + match[2].str() + ")") != std::string::npos);

  // The migrated database holds the schema.
  SqlReader db(database);
  for (const char* table : {"challenges", "deliveries", "audit_events"}) {
    CAPTURE(table);
    CHECK(db.Int(std::string("SELECT COUNT(*) FROM ") + table) == 0);
  }

  // A folder is no SQLite database; a database the server does not have is no PostgreSQL one.
  std::string not_a_database =
      postgres ? PostgresServer::Shared().Uri("no_such_database") : dir.path();
  ExitResult not_a_db = RunSidecarToExit({"migrate", "--database", not_a_database}, dir.path());
  INFO("migrate on a folder: ", not_a_db.err);
  CHECK(not_a_db.exit_code != 0);
}

TEST_CASE("a key file readable by others, or malformed, is refused") {
  TempDir dir;
  std::string key = dir.File("otp.key");
  WriteFileBytes(key, std::string(64, 'a') + "\n", 0644);
  std::vector<std::string> args = {"serve",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--database",
                                   NewTestDatabase(dir.path()),
                                   "--key-file",
                                   key,
                                   "--sms-provider",
                                   "file",
                                   "--sms-file",
                                   dir.File("sms.jsonl")};
  ExitResult open_key = RunSidecarToExit(args, dir.path());
  INFO("stderr: ", open_key.err);
  CHECK_FALSE(open_key.timed_out);
  CHECK(open_key.exit_code != 0);
  CHECK(open_key.err.find("group or others") != std::string::npos);
  CHECK(open_key.err.find("msg=listening") == std::string::npos);
  CHECK(open_key.err.find(std::string(64, 'a')) == std::string::npos);

  WriteFileBytes(key, "not a key\n", 0600);
  ExitResult malformed = RunSidecarToExit(args, dir.path());
  INFO("stderr: ", malformed.err);
  CHECK(malformed.exit_code != 0);
  CHECK(malformed.err.find("64 hex characters") != std::string::npos);
  CHECK(malformed.err.find("msg=listening") == std::string::npos);

  // With the mode fixed the same key is accepted.
  WriteFileBytes(key, std::string(64, 'a') + "\n", 0600);
  SidecarOptions options;
  options.key_file = key;
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();
  std::string id = CreateChallenge(client, "alice");
  CHECK(VerifyById(client, id, sidecar.WaitForSms(id)).str("status") == "approved");
}

TEST_CASE("serve and check-config refuse an SMS file or database in a folder that is missing") {
  TempDir dir;
  std::string missing = dir.File("nowhere");

  ExitResult served =
      RunSidecarToExit({"serve", "--listen", "127.0.0.1:0", "--database", dir.File("otp.db"),
                        "--sms-provider", "file", "--sms-file", missing + "/sms.jsonl"},
                       dir.path());
  ExitResult checked =
      RunSidecarToExit({"check-config", "--database", missing + "/otp.db"}, dir.path());

  CHECK(served.exit_code == 2);
  CHECK(served.err.find("sms.file.path") != std::string::npos);
  CHECK(checked.exit_code == 2);
  CHECK(checked.out.find("database: cannot create " + missing + "/otp.db") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.File("otp.db")));
}

}  // namespace
}  // namespace sidecar::testing
