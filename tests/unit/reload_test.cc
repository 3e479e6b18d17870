#include "app/reload.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

Config MustLoad(const std::string& path) {
  ConfigOverrides flags;
  flags.config_file = path;
  Result<Config> config = LoadConfig(flags);
  REQUIRE_MESSAGE(config.ok(), (config.ok() ? "" : config.error().message));
  return *config;
}

// A delivery worker on a real store whose one provider records what it is given.
struct ReloadFixture : ServiceFixture {
  ReloadFixture() : ServiceFixture(TestChallengeSettings(5, "fake")) {
    std::vector<std::unique_ptr<SmsProvider>> providers;
    auto fake = std::make_unique<FakeProvider>("fake");
    provider = fake.get();
    providers.push_back(std::move(fake));
    DeliverySettings settings;
    settings.message = MessageSettingsOf(MustLoad(config_path), 300'000);
    worker = std::make_unique<DeliveryWorker>(*store, keys, clock, random, std::move(providers),
                                              settings);
  }

  // Creates a challenge and sends its SMS; returns the text.
  std::string SendOne(const std::string& user, const std::string& locale = "") {
    CreateRequest request = UsRequest(user);
    request.locale = locale;
    std::string id = MustCreate(request).id;
    CHECK(worker->DrainDue() == 1);
    REQUIRE_FALSE(provider->sent().empty());
    return provider->sent().back().body;
  }

  std::string config_path =
      (WriteWholeFile(dir.File("otp.toml"), "app_name = \"Acme\"\n"), dir.File("otp.toml"));
  FakeProvider* provider = nullptr;
  std::unique_ptr<DeliveryWorker> worker;
};

}  // namespace

TEST_SUITE("reload") {
  TEST_CASE("a valid file's templates replace the running ones for the next SMS") {
    ReloadFixture f;
    Config running = MustLoad(f.config_path);
    CHECK(f.SendOne("alice").find("is your Acme verification code") != std::string::npos);

    WriteWholeFile(f.config_path,
                   "app_name = \"Globex\"\n"
                   "[sms]\n"
                   "template = \"Code {code} for {app}\"\n"
                   "[sms.templates]\n"
                   "fr = \"Code {app} : {code}\"\n");
    CHECK(ReloadOnHangup(running, *f.worker));

    std::string text = f.SendOne("bob");
    CHECK(text.rfind("Code ", 0) == 0);
    CHECK(text.find(" for Globex") != std::string::npos);
    CHECK(f.SendOne("carol", "fr-CA").rfind("Code Globex : ", 0) == 0);
  }

  TEST_CASE("a reload keeps the OTP_SIDECAR_* variables' overrides") {
    ReloadFixture f;
    Config running = MustLoad(f.config_path);
    ScopedEnv app("OTP_SIDECAR_APP_NAME", std::string("EnvApp"));
    ScopedEnv text("OTP_SIDECAR_SMS_TEMPLATE", std::string("Code {code} for {app}"));

    CHECK(ReloadOnHangup(running, *f.worker));

    std::string sent = f.SendOne("alice");
    CHECK(sent.rfind("Code ", 0) == 0);
    CHECK(sent.find(" for EnvApp") != std::string::npos);
  }

  TEST_CASE("an invalid file is refused and the running templates stay") {
    ReloadFixture f;
    Config running = MustLoad(f.config_path);
    WriteWholeFile(f.config_path, "[sms]\ntemplate = \"no code here {oops}\"\n");

    CHECK_FALSE(ReloadOnHangup(running, *f.worker));

    CHECK(f.SendOne("alice").find("is your Acme verification code") != std::string::npos);
  }

  TEST_CASE("keys other than the templates are named as needing a restart") {
    TempDir dir;
    std::string path = dir.File("otp.toml");
    WriteWholeFile(path, "app_name = \"Acme\"\n");
    Config running = MustLoad(path);
    CHECK(KeysNeedingRestart(running, MustLoad(path)).empty());

    WriteWholeFile(path,
                   "app_name = \"Other\"\n"
                   "listen = \"127.0.0.1:9000\"\n"
                   "socket_group = \"0\"\n"
                   "database_max_size = \"1GiB\"\n"
                   "[auth]\ntoken_files = [\"api-token\"]\n"
                   "[code]\nttl = \"2m\"\n"
                   "[sms]\ntemplate = \"{code}\"\nwebotp_domain = \"example.com\"\n"
                   "[limits]\nuser_sends = [\"1/1m\"]\n"
                   "[retention]\naudit = \"1d\"\n");
    std::vector<std::string> keys = KeysNeedingRestart(running, MustLoad(path));
    CHECK(keys == std::vector<std::string>{"listen", "socket_group", "auth", "database_max_size",
                                           "code", "limits", "retention"});
  }

  TEST_CASE("the running code lifetime stays in the reloaded templates") {
    TempDir dir;
    std::string path = dir.File("otp.toml");
    WriteWholeFile(path, "[code]\nttl = \"10m\"\n");
    MessageSettings settings = MessageSettingsOf(MustLoad(path), 300'000);
    CHECK(settings.ttl_ms == 300'000);
    CHECK(RenderMessage(settings, "123456").find("5 minutes") != std::string::npos);
  }
}
