#include "providers/http_call.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <utility>

namespace sidecar::providers_internal {
namespace {

constexpr std::int64_t kMaxRetryAfterMs = 60 * 60 * 1000;

bool AllDigits(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void ConfigureClient(httplib::ClientImpl& client, const ClientSettings& settings) {
  client.set_connection_timeout(std::chrono::milliseconds(settings.connect_timeout_ms));
  // cpp-httplib applies these to each wait for the socket, not to the whole exchange.
  client.set_read_timeout(std::chrono::milliseconds(settings.request_timeout_ms));
  client.set_write_timeout(std::chrono::milliseconds(settings.request_timeout_ms));
  client.set_tcp_nodelay(true);
}

HttpAnswer Run(httplib::ClientImpl& client, const HttpRequest& request) {
  httplib::Result result = request(client);

  HttpAnswer answer;
  answer.error = result.error();
  if (result) {
    answer.status = result->status;
    answer.body = result->body;
    answer.retry_after = result->get_header_value("Retry-After");
  }
  return answer;
}

std::string VerifyProblem(long verify_result) {
  switch (verify_result) {
    case 0:  // the chain verified: the name did not match
      return "it does not name the host";
    case 9:
      return "it is not valid yet";
    case 10:
      return "it has expired";
    case 18:
    case 19:
      return "it is self-signed";
    case 20:
    case 21:
      return "it is issued by an unknown authority";
    default:
      return "OpenSSL verify error " + std::to_string(verify_result);
  }
}

void ReplaceAll(std::string& text, const std::string& part, const std::string& by) {
  if (part.empty()) return;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at)) {
    text.replace(at, part.size(), by);
    at += by.size();
  }
}

}  // namespace

// A new client, hence a new connection, for every call: a reused keep-alive connection that
// the server has closed in the meantime would look like "no answer" (unknown) when the
// request was in fact never sent.
HttpAnswer CallOnNewConnection(const ParsedUrl& url, const ClientSettings& settings,
                               const HttpRequest& request) {
  if (!url.tls) {
    httplib::ClientImpl client(url.host, url.port);
    ConfigureClient(client, settings);
    return Run(client, request);
  }

  httplib::SSLClient client(url.host, url.port);
  ConfigureClient(client, settings);
  client.enable_server_certificate_verification(true);
  // With no path cpp-httplib asks OpenSSL for its default locations: the system store
  // (/etc/ssl/certs/ca-certificates.crt on Debian, or $SSL_CERT_FILE).
  if (!settings.ca_file.empty()) client.set_ca_cert_path(settings.ca_file);

  HttpAnswer answer = Run(client, request);
  answer.verify_result = client.get_openssl_verify_result();
  return answer;
}

SendOutcome OutcomeForTransportError(httplib::Error error, long verify_result,
                                     const ParsedUrl& url) {
  std::string where = url.host + ":" + std::to_string(url.port);
  std::string what = httplib::to_string(error);
  switch (error) {
    case httplib::Error::SSLServerVerification:
      // The handshake failed, so the request never left: the provider, not this message, is
      // at fault, and the worker fails over.
      return SendOutcome::Permanent(
          "TLS certificate of " + where + " does not verify: " + VerifyProblem(verify_result),
          true);
    case httplib::Error::Read:
      return SendOutcome::Unknown(
          "no answer from " + where +
          " after the request was sent (read timeout or connection closed)");
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::SSLConnection:
    case httplib::Error::Write:
      return SendOutcome::Retry("cannot send to " + where + " (" + what + ")");
    default:
      return SendOutcome::Retry("request to " + where + " failed (" + what + ")");
  }
}

SendOutcome OutcomeOfCall(const HttpAnswer& answer, const ParsedUrl& url, AnswerClassifier classify,
                          const std::vector<std::string>& secrets_to_redact) {
  SendOutcome outcome = answer.error == httplib::Error::Success
                            ? classify(answer)
                            : OutcomeForTransportError(answer.error, answer.verify_result, url);

  // An answer may quote back what it was sent, the secrets included.
  outcome.reason = CleanReason(outcome.reason, secrets_to_redact);
  outcome.message_id = CleanMessageId(outcome.message_id, secrets_to_redact);
  return outcome;
}

std::string CleanMessageId(const std::string& id, const std::vector<std::string>& secrets) {
  // An id is shown on the challenge and kept in the database: only a plain token is worth it.
  bool plain = id.size() <= kMaxMessageIdBytes && std::all_of(id.begin(), id.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                        c == '.' || c == ':';
               });
  bool quotes_secret = std::any_of(secrets.begin(), secrets.end(), [&](const std::string& secret) {
    return !secret.empty() && id.find(secret) != std::string::npos;
  });
  return plain && !quotes_secret ? id : "";
}

std::int64_t ParseRetryAfterMs(std::string_view header) {
  // Nine digits at most, so that std::stoll cannot throw and the product cannot overflow.
  bool seconds = !header.empty() && header.size() <= 9 && AllDigits(header);
  if (!seconds) return 0;  // absent, or an HTTP date: the worker picks a backoff

  return std::min<std::int64_t>(std::stoll(std::string(header)) * 1000, kMaxRetryAfterMs);
}

std::string TruncateUtf8(std::string text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;

  std::size_t cut = max_bytes - 3;
  // Back off continuation bytes (10xxxxxx) so that no character is cut in half.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return text.substr(0, cut) + "...";
}

std::vector<std::string> MessageSecrets(const SmsMessage& message) {
  std::vector<std::string> secrets{message.body, message.to};
  // The recipient without its "+", as a form-encoded body ("To=%2B1206...") quotes it.
  if (message.to.size() > 1 && message.to.front() == '+') secrets.push_back(message.to.substr(1));

  // The code may be quoted alone, without the rest of the text around it.
  std::string digits;
  for (char c : message.body + " ") {
    if (c >= '0' && c <= '9') {
      digits += c;
      continue;
    }
    if (digits.size() >= 4) secrets.push_back(digits);
    digits.clear();
  }
  return secrets;
}

std::string CleanReason(std::string_view text, const std::vector<std::string>& secrets_to_redact) {
  std::string reason(text);

  // Longest first, so that a secret inside another is not replaced half-way.
  std::vector<std::string> secrets = secrets_to_redact;
  std::stable_sort(secrets.begin(), secrets.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& secret : secrets) {
    ReplaceAll(reason, secret, "[redacted]");
  }

  // Reasons go to logs, audit rows and the delivery: one line each.
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) < ' ' || c == 127) c = ' ';
    if (c == '"') c = '\'';
  }
  return TruncateUtf8(std::move(reason), kMaxReasonBytes);
}

}  // namespace sidecar::providers_internal
