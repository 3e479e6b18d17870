#pragma once

// RFC 9457 problem details. Every error the API returns is application/problem+json with
// a stable `code`; this file is the one table from codes to HTTP statuses and titles.

#include <string>

#include "common/result.h"

namespace sidecar {

struct Problem {
  int status = 500;
  std::string body;  // the serialised problem+json object
};

// The HTTP status for an error code. Codes not in the table are treated as internal
// errors (500): a bug, never something a request can trigger on purpose.
int StatusForErrorCode(const std::string& code);

// Whole seconds for a Retry-After header, rounded up, at least 1.
std::int64_t RetryAfterSeconds(std::int64_t retry_after_ms);

// Builds {"type", "title", "status", "detail", "code", "field"?, "instance"?,
// "retry_after"?} (retry_after in seconds, for refusals by a limit).
// Storage errors are answered with a generic detail; their message goes to the log only.
Problem MakeProblem(const Error& error, const std::string& instance);

}  // namespace sidecar
