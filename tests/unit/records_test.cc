#include "store/records.h"

#include <doctest/doctest.h>

using namespace sidecar;

TEST_SUITE("records") {
  TEST_CASE("challenge statuses round trip through their names") {
    const std::pair<ChallengeStatus, const char*> all[] = {
        {ChallengeStatus::kPending, "pending"},   {ChallengeStatus::kApproved, "approved"},
        {ChallengeStatus::kExpired, "expired"},   {ChallengeStatus::kLocked, "locked"},
        {ChallengeStatus::kCanceled, "canceled"}, {ChallengeStatus::kSuperseded, "superseded"},
    };
    for (const auto& [status, name] : all) {
      CAPTURE(name);
      CHECK(ToString(status) == name);
      ChallengeStatus parsed = ChallengeStatus::kPending;
      CHECK(ParseChallengeStatus(name, &parsed));
      CHECK(parsed == status);
    }
  }

  TEST_CASE("delivery states round trip through their names") {
    const std::pair<DeliveryState, const char*> all[] = {
        {DeliveryState::kQueued, "queued"},   {DeliveryState::kSending, "sending"},
        {DeliveryState::kSent, "sent"},       {DeliveryState::kFailed, "failed"},
        {DeliveryState::kUnknown, "unknown"},
    };
    for (const auto& [state, name] : all) {
      CAPTURE(name);
      CHECK(ToString(state) == name);
      DeliveryState parsed = DeliveryState::kQueued;
      CHECK(ParseDeliveryState(name, &parsed));
      CHECK(parsed == state);
    }
  }

  TEST_CASE("unknown names do not parse and leave the value alone") {
    ChallengeStatus status = ChallengeStatus::kLocked;
    CHECK_FALSE(ParseChallengeStatus("Pending", &status));
    CHECK_FALSE(ParseChallengeStatus("", &status));
    CHECK(status == ChallengeStatus::kLocked);

    DeliveryState state = DeliveryState::kSent;
    CHECK_FALSE(ParseDeliveryState("delivered", &state));
    CHECK(state == DeliveryState::kSent);
  }

}  // TEST_SUITE
