#include "store/records.h"

#include <array>
#include <utility>

namespace sidecar {
namespace {

constexpr std::array<std::pair<ChallengeStatus, std::string_view>, 6> kChallengeStatusNames = {{
    {ChallengeStatus::kPending, "pending"},
    {ChallengeStatus::kApproved, "approved"},
    {ChallengeStatus::kExpired, "expired"},
    {ChallengeStatus::kLocked, "locked"},
    {ChallengeStatus::kCanceled, "canceled"},
    {ChallengeStatus::kSuperseded, "superseded"},
}};

constexpr std::array<std::pair<DeliveryState, std::string_view>, 5> kDeliveryStateNames = {{
    {DeliveryState::kQueued, "queued"},
    {DeliveryState::kSending, "sending"},
    {DeliveryState::kSent, "sent"},
    {DeliveryState::kFailed, "failed"},
    {DeliveryState::kUnknown, "unknown"},
}};

template <typename Enum, std::size_t N>
std::string_view NameOf(const std::array<std::pair<Enum, std::string_view>, N>& names, Enum value) {
  for (const auto& [candidate, name] : names) {
    if (candidate == value) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
bool ValueOf(const std::array<std::pair<Enum, std::string_view>, N>& names, std::string_view text,
             Enum* value) {
  for (const auto& [candidate, name] : names) {
    if (name == text) {
      *value = candidate;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view ToString(ChallengeStatus status) {
  return NameOf(kChallengeStatusNames, status);
}

bool ParseChallengeStatus(std::string_view text, ChallengeStatus* status) {
  return ValueOf(kChallengeStatusNames, text, status);
}

std::string_view ToString(DeliveryState state) {
  return NameOf(kDeliveryStateNames, state);
}

bool ParseDeliveryState(std::string_view text, DeliveryState* state) {
  return ValueOf(kDeliveryStateNames, text, state);
}

}  // namespace sidecar
