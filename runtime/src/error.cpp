#include <aether/runtime/error.hpp>

#include <fmt/format.h>

namespace aether {

std::string_view to_string(errc e) noexcept {
  switch (e) {
  case errc::invalid_id:
    return "invalid_id";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::mailbox_full:
    return "mailbox_full";
  case errc::timeout:
    return "timeout";
  case errc::unknown_actor_type:
    return "unknown_actor_type";
  case errc::unknown_message_type:
    return "unknown_message_type";
  case errc::handler_failed:
    return "handler_failed";
  case errc::no_reply:
    return "no_reply";
  case errc::unexpected_reply:
    return "unexpected_reply";
  case errc::shutting_down:
    return "shutting_down";
  case errc::actor_stopped:
    return "actor_stopped";
  case errc::malformed_payload:
    return "malformed_payload";
  case errc::payload_too_large:
    return "payload_too_large";
  case errc::version_conflict:
    return "version_conflict";
  case errc::replay_failed:
    return "replay_failed";
  case errc::unavailable:
    return "unavailable";
  case errc::not_found:
    return "not_found";
  case errc::io_error:
    return "io_error";
  case errc::in_use:
    return "in_use";
  case errc::no_wire_form:
    return "no_wire_form";
  case errc::unauthorized:
    return "unauthorized";
  case errc::permission_denied:
    return "permission_denied";
  }
  return "unknown";
}

namespace {
class category final : public std::error_category {
public:
  [[nodiscard]] const char* name() const noexcept override { return "aether"; }
  [[nodiscard]] std::string message(int code) const override { return std::string{to_string(static_cast<errc>(code))}; }
};
} // namespace

const std::error_category& aether_category() noexcept {
  static const category instance;
  return instance;
}

std::string error::to_string() const {
  if (detail_.empty()) return fmt::format("aether: {}", aether::to_string(code_));
  return fmt::format("aether: {}: {}", aether::to_string(code_), detail_);
}

} // namespace aether
