#include "challenges/challenge_service.h"

#include "common/log.h"
#include "common/phone.h"

namespace sidecar {
namespace {

constexpr std::size_t kChallengeIdLength = 3 + 26;

bool IsEnded(ChallengeStatus status) {
  return status != ChallengeStatus::kPending;
}

VerifyStatus VerifyStatusForEnded(ChallengeStatus status) {
  switch (status) {
    case ChallengeStatus::kApproved:
      return VerifyStatus::kUsed;
    case ChallengeStatus::kExpired:
      return VerifyStatus::kExpired;
    case ChallengeStatus::kLocked:
      return VerifyStatus::kLocked;
    case ChallengeStatus::kCanceled:
    case ChallengeStatus::kSuperseded:
    case ChallengeStatus::kPending:
      break;
  }
  return VerifyStatus::kCanceled;
}

void LogRefusal(const Refusal& refusal, const Challenge& challenge) {
  if (refusal.region_newly_suspended) {
    Log(LogLevel::kWarn, "limits", "region suspended: its sends do not convert",
        {{"region", challenge.region}, {"cool_off_ms", std::to_string(refusal.retry_after_ms)}});
    return;
  }
  Log(LogLevel::kInfo, "limits", "refused",
      {{"limit", refusal.limit},
       {"user", challenge.user},
       {"phone", MaskPhone(challenge.phone)},
       {"retry_after_ms", std::to_string(refusal.retry_after_ms)}});
}

Error RefusalError(const Refusal& refusal) {
  Error error = MakeError(refusal.limit, "refused by the " + refusal.limit + " limit");
  if (refusal.limit == "region_suspended") {
    error.message = "SMS to this region are suspended: its codes are not being used";
  } else if (refusal.limit == "resend_cooldown") {
    error.message = "the code was sent moments ago; wait before asking again";
  }
  error.retry_after_ms = refusal.retry_after_ms;
  return error;
}

}  // namespace

std::string_view ToString(VerifyStatus status) {
  switch (status) {
    case VerifyStatus::kApproved:
      return "approved";
    case VerifyStatus::kDenied:
      return "denied";
    case VerifyStatus::kExpired:
      return "expired";
    case VerifyStatus::kLocked:
      return "locked";
    case VerifyStatus::kCanceled:
      return "canceled";
    case VerifyStatus::kUsed:
      return "used";
  }
  return "denied";
}

ChallengeService::ChallengeService(Store& store, const CodeKeys& keys, const Clock& clock,
                                   RandomSource& random, const Limiter& limiter,
                                   ChallengeSettings settings,
                                   std::function<void()> on_delivery_queued, Metrics& metrics)
    : store_(store),
      keys_(keys),
      clock_(clock),
      random_(random),
      limiter_(limiter),
      settings_(std::move(settings)),
      on_delivery_queued_(std::move(on_delivery_queued)),
      metrics_(metrics) {}

bool ChallengeService::LooksLikeChallengeId(const std::string& id) {
  if (id.size() != kChallengeIdLength || id.compare(0, 3, "ch_") != 0) return false;
  for (std::size_t i = 3; i < id.size(); ++i) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

AuditEvent ChallengeService::Audit(const Challenge& challenge, std::string event,
                                   std::string outcome, const std::string& client_ip,
                                   TimeMs now) const {
  AuditEvent audit;
  audit.time = now;
  audit.event = std::move(event);
  audit.user = challenge.user;
  audit.challenge_id = challenge.id;
  audit.outcome = std::move(outcome);
  audit.client_ip = client_ip;
  audit.phone_masked = MaskPhone(challenge.phone);
  return audit;
}

Status ChallengeService::End(StoreTx& tx, Challenge& challenge, ChallengeStatus status, TimeMs now,
                             const std::string& why, std::vector<ChallengeStatus>& ended) const {
  ended.push_back(status);
  challenge.status = status;
  challenge.ended_at = now;
  challenge.sealed_code.reset();  // a code that can no longer be verified is never sent

  Status updated = tx.UpdateChallenge(challenge);
  if (!updated.ok()) return updated;
  return tx.FailQueuedDeliveries(challenge.id, why, now);
}

void ChallengeService::CountEnded(const std::vector<ChallengeStatus>& ended) {
  for (ChallengeStatus status : ended)
    metrics_.CountChallenge(ToString(status));
}

Status ChallengeService::Refuse(StoreTx& tx, const Challenge& challenge, const std::string& event,
                                const Refusal& refusal, const std::string& client_ip,
                                TimeMs now) const {
  AuditEvent audit = Audit(challenge, event, "refused", client_ip, now);
  // A refused create never stores its challenge; an id nobody can look up would mislead.
  if (event == "create") audit.challenge_id.clear();
  audit.detail =
      "limit=" + refusal.limit + " retry_after_ms=" + std::to_string(refusal.retry_after_ms);
  Status audited = tx.AppendAudit(audit);
  if (!audited.ok() || !refusal.region_newly_suspended) return audited;

  AuditEvent suspended = Audit(challenge, "region_suspend", "suspended", client_ip, now);
  suspended.challenge_id = audit.challenge_id;
  suspended.detail =
      "region=" + challenge.region + " cool_off_ms=" + std::to_string(refusal.retry_after_ms);
  return tx.AppendAudit(suspended);
}

Result<CreatedChallenge> ChallengeService::Create(const CreateRequest& request) {
  TimeMs now = clock_.Now();
  Challenge challenge;
  challenge.id = GenerateChallengeId(random_);
  challenge.user = request.user;
  challenge.phone = request.phone;
  challenge.region = request.region;
  challenge.locale = request.locale;
  challenge.client_ip = request.client_ip;
  challenge.max_attempts = settings_.max_attempts;
  challenge.created_at = now;
  challenge.expires_at = now + settings_.ttl_ms;
  std::optional<Refusal> refusal;
  std::vector<ChallengeStatus> ended;

  Status stored = store_.Transact([&](StoreTx& tx) -> Status {
    ended.clear();
    refusal.reset();  // a run again after a conflict starts afresh
    Result<std::optional<Refusal>> admitted = limiter_.AdmitSend(
        tx, SendSubject{request.user, request.phone, request.client_ip, request.region}, now);
    if (!admitted.ok()) return admitted.error();
    if (admitted->has_value()) {
      refusal = **admitted;
      return Refuse(tx, challenge, "create", *refusal, request.client_ip, now);
    }

    // The code exists only once every limit has let the send through.
    std::string code = GenerateCode(settings_.code_length, random_);
    challenge.code_hash = HashCode(keys_, challenge.id, challenge.user, code);
    challenge.sealed_code = SealCode(keys_, code, random_);

    Result<std::vector<Challenge>> live = tx.FindPendingChallengesOfUser(request.user);
    if (!live.ok()) return live.error();
    for (Challenge& old : *live) {
      Status superseded = End(tx, old, ChallengeStatus::kSuperseded, now, "superseded", ended);
      if (superseded.ok()) {
        AuditEvent audit = Audit(old, "supersede", "superseded", request.client_ip, now);
        audit.detail = "by=" + challenge.id;
        superseded = tx.AppendAudit(audit);
      }
      if (!superseded.ok()) return superseded;
    }

    Status inserted = tx.InsertChallenge(challenge);
    if (!inserted.ok()) return inserted;
    Result<std::int64_t> delivery = tx.InsertDelivery(challenge.id, settings_.first_provider, now);
    if (!delivery.ok()) return delivery.error();
    return tx.AppendAudit(Audit(challenge, "create", "pending", request.client_ip, now));
  });
  if (!stored.ok()) return stored.error();
  if (refusal) {
    LogRefusal(*refusal, challenge);
    metrics_.CountRefusal(refusal->limit);
    metrics_.CountChallenge("refused");
    return RefusalError(*refusal);
  }

  CountEnded(ended);
  metrics_.CountChallenge("created");
  on_delivery_queued_();
  return CreatedChallenge{challenge.id, challenge.created_at, challenge.expires_at};
}

VerifyResult ChallengeService::Decide(Challenge& challenge, const CodeAttempt& attempt,
                                      TimeMs now) const {
  VerifyResult result;
  result.challenge_id = challenge.id;

  if (IsEnded(challenge.status)) {
    result.status = VerifyStatusForEnded(challenge.status);
    if (result.status == VerifyStatus::kCanceled) {
      result.reason = challenge.status == ChallengeStatus::kSuperseded ? "superseded" : "canceled";
    }
    return result;
  }
  if (now >= challenge.expires_at) {
    challenge.status = ChallengeStatus::kExpired;
    result.status = VerifyStatus::kExpired;
    return result;
  }
  if (challenge.attempts >= challenge.max_attempts) {
    challenge.status = ChallengeStatus::kLocked;
    result.status = VerifyStatus::kLocked;
    return result;
  }

  // Every comparison counts, well-formed or not, so the attempt budget bounds guessing.
  challenge.attempts += 1;
  bool match = attempt.is_text && CodeMatches(keys_, challenge.id, challenge.user, attempt.text,
                                              settings_.code_length, challenge.code_hash);
  result.attempts_remaining = challenge.max_attempts - challenge.attempts;
  if (match) {
    challenge.status = ChallengeStatus::kApproved;
    result.status = VerifyStatus::kApproved;
    result.attempts_remaining = 0;
  } else {
    // The last wrong code is reported as denied with nothing remaining; the challenge is
    // locked from here on, so even the right code is refused afterwards.
    if (challenge.attempts >= challenge.max_attempts) challenge.status = ChallengeStatus::kLocked;
    result.status = VerifyStatus::kDenied;
  }
  return result;
}

Result<VerifyResult> ChallengeService::Verify(
    const std::function<Result<std::optional<Challenge>>(StoreTx&)>& find,
    const char* not_found_code, const CodeAttempt& attempt, const std::string& client_ip) {
  TimeMs now = clock_.Now();
  VerifyResult result;
  std::optional<Refusal> refusal;
  std::vector<ChallengeStatus> ended;

  Status stored = store_.Transact([&](StoreTx& tx) -> Status {
    ended.clear();
    refusal.reset();  // a run again after a conflict starts afresh
    Result<std::optional<Challenge>> found = find(tx);
    if (!found.ok()) return found.error();
    if (!found->has_value()) return MakeError(not_found_code, "no such challenge");
    Challenge challenge = **found;

    // The budgets apply only where a code would be compared; answers about challenges that
    // ended cost nothing and reveal nothing.
    bool would_compare = challenge.status == ChallengeStatus::kPending &&
                         now < challenge.expires_at && challenge.attempts < challenge.max_attempts;
    if (would_compare) {
      Result<std::optional<Refusal>> checked =
          limiter_.CheckVerify(tx, challenge.user, client_ip, now);
      if (!checked.ok()) return checked.error();
      if (checked->has_value()) {
        refusal = **checked;
        result = VerifyResult{challenge.id, VerifyStatus::kLocked, 0, refusal->limit,
                              refusal->retry_after_ms};
        return Refuse(tx, challenge, "verify", *refusal, client_ip, now);
      }
    }

    ChallengeStatus before = challenge.status;
    int attempts_before = challenge.attempts;
    result = Decide(challenge, attempt, now);

    if (challenge.status != before) {
      Status changed =
          End(tx, challenge, challenge.status, now, std::string(ToString(challenge.status)), ended);
      if (!changed.ok()) return changed;
    } else if (challenge.attempts != attempts_before) {
      Status updated = tx.UpdateChallenge(challenge);
      if (!updated.ok()) return updated;
    }

    Status counted = OkStatus();
    if (result.status == VerifyStatus::kApproved) {
      // An exempt number's sends are not counted, so its approvals must not be either.
      const std::string& region = limiter_.IsExempt(challenge.phone) ? "" : challenge.region;
      counted = limiter_.RecordApproval(tx, challenge.user, region, now);
    } else if (challenge.attempts != attempts_before) {
      counted = limiter_.RecordFailure(tx, challenge.user, client_ip, now);
    }
    if (!counted.ok()) return counted;

    AuditEvent audit =
        Audit(challenge, "verify", std::string(ToString(result.status)), client_ip, now);
    audit.detail = "attempts=" + std::to_string(challenge.attempts) + "/" +
                   std::to_string(challenge.max_attempts);
    if (!result.reason.empty()) audit.detail += " reason=" + result.reason;
    return tx.AppendAudit(audit);
  });
  if (!stored.ok()) return stored.error();
  CountEnded(ended);
  if (refusal) metrics_.CountRefusal(refusal->limit);

  // The user's budget answers "locked"; an address's budget is not the user's fault, so
  // it is a refusal of the request instead.
  if (refusal && refusal->limit != "user_failures") return RefusalError(*refusal);
  return result;
}

Result<VerifyResult> ChallengeService::VerifyById(const std::string& id, const CodeAttempt& attempt,
                                                  const std::string& client_ip) {
  if (!LooksLikeChallengeId(id)) {
    return Counted(MakeError("challenge_not_found", "no such challenge"));
  }
  return Counted(Verify([&](StoreTx& tx) { return tx.FindChallenge(id); }, "challenge_not_found",
                        attempt, client_ip));
}

Result<VerifyResult> ChallengeService::VerifyByUser(const std::string& user,
                                                    const CodeAttempt& attempt,
                                                    const std::string& client_ip) {
  return Counted(Verify([&](StoreTx& tx) { return tx.FindLatestChallengeOfUser(user); },
                        "no_challenge", attempt, client_ip));
}

Result<VerifyResult> ChallengeService::Counted(Result<VerifyResult> result) {
  if (result.ok()) {
    metrics_.CountVerification(ToString(result->status));
  } else if (result.error().code == "challenge_not_found" ||
             result.error().code == "no_challenge") {
    metrics_.CountVerification("no_challenge");
  } else if (result.error().retry_after_ms > 0) {
    metrics_.CountVerification("refused");  // by a limit; storage failures are not answers
  }
  return result;
}

Status ChallengeService::Resend(const std::string& id, const std::string& client_ip) {
  if (!LooksLikeChallengeId(id)) return MakeError("challenge_not_found", "no such challenge");
  TimeMs now = clock_.Now();
  bool queued = false;
  std::optional<ChallengeStatus> not_pending;
  std::optional<Refusal> refusal;
  Challenge challenge;
  std::vector<ChallengeStatus> ended;

  Status stored = store_.Transact([&](StoreTx& tx) -> Status {
    ended.clear();
    refusal.reset();  // a run again after a conflict starts afresh
    Result<std::optional<Challenge>> found = tx.FindChallenge(id);
    if (!found.ok()) return found.error();
    if (!found->has_value()) return MakeError("challenge_not_found", "no such challenge");
    challenge = **found;

    // An expired challenge is ended here and now, and that change is committed even though
    // the caller is told the resend was refused.
    if (challenge.status == ChallengeStatus::kPending && now >= challenge.expires_at) {
      Status expired = End(tx, challenge, ChallengeStatus::kExpired, now, "expired", ended);
      if (!expired.ok()) return expired;
    }
    if (challenge.status != ChallengeStatus::kPending) {
      not_pending = challenge.status;
      return tx.AppendAudit(Audit(challenge, "resend", "refused", client_ip, now));
    }

    Result<std::optional<Delivery>> latest = tx.FindLatestDelivery(id);
    if (!latest.ok()) return latest.error();
    if (latest->has_value() && (*latest)->state == DeliveryState::kQueued) {
      AuditEvent audit = Audit(challenge, "resend", "queued", client_ip, now);
      audit.detail = "coalesced with the queued delivery";
      return tx.AppendAudit(audit);
    }

    TimeMs last_sent = latest->has_value() ? (*latest)->created_at : challenge.created_at;
    std::int64_t cooldown_left = last_sent + limiter_.resend_cooldown_ms() - now;
    if (cooldown_left > 0) {
      refusal = Refusal{"resend_cooldown", cooldown_left, false};
      return Refuse(tx, challenge, "resend", *refusal, client_ip, now);
    }
    Result<std::optional<Refusal>> admitted = limiter_.AdmitSend(
        tx, SendSubject{challenge.user, challenge.phone, client_ip, challenge.region}, now);
    if (!admitted.ok()) return admitted.error();
    if (admitted->has_value()) {
      refusal = **admitted;
      return Refuse(tx, challenge, "resend", *refusal, client_ip, now);
    }

    Result<std::int64_t> inserted = tx.InsertDelivery(id, settings_.first_provider, now);
    if (!inserted.ok()) return inserted.error();
    queued = true;
    return tx.AppendAudit(Audit(challenge, "resend", "queued", client_ip, now));
  });
  if (!stored.ok()) return stored;
  CountEnded(ended);

  if (not_pending) {
    return MakeError(
        "challenge_not_pending",
        "the challenge is " + std::string(ToString(*not_pending)) + "; start a new one");
  }
  if (refusal) {
    LogRefusal(*refusal, challenge);
    metrics_.CountRefusal(refusal->limit);
    return RefusalError(*refusal);
  }
  if (queued) on_delivery_queued_();
  return OkStatus();
}

Status ChallengeService::Cancel(const std::string& id, const std::string& client_ip) {
  if (!LooksLikeChallengeId(id)) return MakeError("challenge_not_found", "no such challenge");
  TimeMs now = clock_.Now();
  std::vector<ChallengeStatus> ended;

  Status stored = store_.Transact([&](StoreTx& tx) -> Status {
    ended.clear();
    Result<std::optional<Challenge>> found = tx.FindChallenge(id);
    if (!found.ok()) return found.error();
    if (!found->has_value()) return MakeError("challenge_not_found", "no such challenge");
    Challenge challenge = **found;

    if (challenge.status != ChallengeStatus::kPending) {
      AuditEvent audit = Audit(challenge, "cancel", "unchanged", client_ip, now);
      audit.detail = "status=" + std::string(ToString(challenge.status));
      return tx.AppendAudit(audit);
    }
    Status canceled = End(tx, challenge, ChallengeStatus::kCanceled, now, "canceled", ended);
    if (!canceled.ok()) return canceled;
    return tx.AppendAudit(Audit(challenge, "cancel", "canceled", client_ip, now));
  });
  if (stored.ok()) CountEnded(ended);
  return stored;
}

Result<ChallengeView> ChallengeService::Get(const std::string& id) {
  if (!LooksLikeChallengeId(id)) return MakeError("challenge_not_found", "no such challenge");
  TimeMs now = clock_.Now();
  ChallengeView view;

  Status read = store_.Transact([&](StoreTx& tx) -> Status {
    Result<std::optional<Challenge>> found = tx.FindChallenge(id);
    if (!found.ok()) return found.error();
    if (!found->has_value()) return MakeError("challenge_not_found", "no such challenge");
    view.challenge = **found;

    Result<std::optional<Delivery>> delivery = tx.FindLatestDelivery(id);
    if (!delivery.ok()) return delivery.error();
    view.delivery = *delivery;
    return OkStatus();
  });
  if (!read.ok()) return read.error();

  // Reads do not write: the expiry sweep records the end, the view already shows it.
  if (view.challenge.status == ChallengeStatus::kPending && now >= view.challenge.expires_at) {
    view.challenge.status = ChallengeStatus::kExpired;
  }
  view.challenge.sealed_code.reset();
  view.challenge.code_hash.clear();
  return view;
}

Result<int> ChallengeService::ExpireDue(int limit) {
  TimeMs now = clock_.Now();
  std::vector<ChallengeStatus> ended;

  Status swept = store_.Transact([&](StoreTx& tx) -> Status {
    ended.clear();
    Result<std::vector<Challenge>> due = tx.FindExpiredPending(now, limit);
    if (!due.ok()) return due.error();
    for (Challenge& challenge : *due) {
      Status expired = End(tx, challenge, ChallengeStatus::kExpired, now, "expired", ended);
      if (expired.ok()) expired = tx.AppendAudit(Audit(challenge, "expire", "expired", "", now));
      if (!expired.ok()) return expired;
    }
    return OkStatus();
  });
  if (!swept.ok()) return swept.error();
  CountEnded(ended);
  return static_cast<int>(ended.size());
}

Status ChallengeService::PruneLimits() {
  TimeMs now = clock_.Now();
  return store_.Transact([&](StoreTx& tx) { return limiter_.Prune(tx, now); });
}

}  // namespace sidecar
