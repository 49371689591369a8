#include <aether/actors/actor_id.hpp>

#include <fmt/format.h>

#include <cstring>
#include <new>

namespace aether {

namespace detail {
void actor_id_rep::destroy() const noexcept {
  this->~actor_id_rep();
  ::operator delete(const_cast<actor_id_rep*>(this));
}
} // namespace detail

namespace {
intrusive_ptr<const detail::actor_id_rep> make_rep(std::string_view ns, std::string_view type, std::string_view key) {
  const auto size = ns.size() + type.size() + key.size();
  void* memory = ::operator new(sizeof(detail::actor_id_rep) + size);
  auto* r = ::new (memory) detail::actor_id_rep{};
  r->ns_size = static_cast<std::uint16_t>(ns.size());
  r->type_size = static_cast<std::uint16_t>(type.size());
  r->key_size = static_cast<std::uint16_t>(key.size());
  auto* out = reinterpret_cast<char*>(r + 1);
  std::memcpy(out, ns.data(), ns.size());
  std::memcpy(out + ns.size(), type.data(), type.size());
  std::memcpy(out + ns.size() + type.size(), key.data(), key.size());
  // Hash of "ns.type.key": the same bytes as the actor's subject suffix.
  r->hash = fnv1a_64(key, fnv1a_64(".", fnv1a_64(type, fnv1a_64(".", fnv1a_64(ns)))));
  return intrusive_ptr<const detail::actor_id_rep>{r};
}
} // namespace

expected<void> actor_id::validate_part(std::string_view part, std::string_view what) {
  if (part.empty()) return error{errc::invalid_id, fmt::format("{} is empty", what)};
  if (part.size() > max_part_size) {
    return error{errc::invalid_id, fmt::format("{} is {} bytes, more than {}", what, part.size(), max_part_size)};
  }
  if (part.front() == '$') return error{errc::invalid_id, fmt::format("{} starts with '$'", what)};
  for (const char c : part) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '.' || c == '*' || c == '>' || c == '/') {
      return error{errc::invalid_id, fmt::format("{} contains {:#04x}, which is not allowed in a token", what, u)};
    }
  }
  return {};
}

namespace {
bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("{:#04x}", u);
}
} // namespace

expected<void> actor_id::validate_name(std::string_view name, std::string_view what) {
  if (name.empty()) return error{errc::invalid_id, fmt::format("{} is empty", what)};
  if (name.size() > max_namespace_size) {
    return error{errc::invalid_id, fmt::format("{} is {} bytes, more than {}", what, name.size(), max_namespace_size)};
  }
  for (const char c : name) {
    if (!name_char(c)) {
      return error{errc::invalid_id,
                   fmt::format("{} contains {}; it may hold letters, digits, - and _", what, describe(c))};
    }
  }
  return {};
}

expected<void> actor_id::validate_namespace(std::string_view ns) {
  if (ns.empty()) return error{errc::invalid_id, "namespace is empty"};
  if (ns.size() > max_namespace_size) {
    return error{errc::invalid_id, fmt::format("namespace '{}...' is {} bytes, more than {}", ns.substr(0, 16),
                                               ns.size(), max_namespace_size)};
  }
  if (ns.front() == '.') return error{errc::invalid_id, fmt::format("namespace '{}' starts with a dot", ns)};
  if (ns.back() == '.') return error{errc::invalid_id, fmt::format("namespace '{}' ends with a dot", ns)};
  for (std::size_t i = 0; i < ns.size(); ++i) {
    const char c = ns[i];
    if (c == '.') {
      if (ns[i + 1] == '.') {
        return error{errc::invalid_id, fmt::format("namespace '{}' has an empty token (two dots at {})", ns, i)};
      }
      continue;
    }
    if (c == '*' || c == '>') {
      return error{errc::invalid_id,
                   fmt::format("namespace '{}' contains the wildcard '{}'; wildcards belong in subscription "
                               "patterns, not in a namespace",
                               ns, c)};
    }
    if (!name_char(c)) {
      return error{errc::invalid_id, fmt::format("namespace contains {}; its dot-separated tokens may hold letters, "
                                                 "digits, - and _",
                                                 describe(c))};
    }
  }
  return {};
}

expected<actor_id> actor_id::make(std::string_view type, std::string_view key, std::string_view ns) {
  if (auto r = validate_namespace(ns); !r) return r.error();
  if (auto r = validate_part(type, "actor type"); !r) return r.error();
  if (auto r = validate_part(key, "actor key"); !r) return r.error();
  return actor_id{make_rep(ns, type, key)};
}

actor_id::actor_id(std::string_view type, std::string_view key, std::string_view ns)
    : actor_id{make(type, key, ns).value()} {}

expected<actor_id> actor_id::parse(std::string_view text) {
  const auto first = text.find('/');
  if (first == std::string_view::npos) {
    return error{errc::invalid_id, fmt::format("'{}' is not type/key or ns/type/key", text)};
  }
  const auto second = text.find('/', first + 1);
  if (second == std::string_view::npos) return make(text.substr(0, first), text.substr(first + 1));
  return make(text.substr(first + 1, second - first - 1), text.substr(second + 1), text.substr(0, first));
}

std::string_view actor_id::ns() const noexcept {
  return rep_ ? std::string_view{rep_->bytes(), rep_->ns_size} : std::string_view{};
}
std::string_view actor_id::type() const noexcept {
  return rep_ ? std::string_view{rep_->bytes() + rep_->ns_size, rep_->type_size} : std::string_view{};
}
std::string_view actor_id::key() const noexcept {
  return rep_ ? std::string_view{rep_->bytes() + rep_->ns_size + rep_->type_size, rep_->key_size} : std::string_view{};
}

std::string actor_id::to_string() const {
  if (!rep_) return "<null>";
  return fmt::format("{}/{}/{}", ns(), type(), key());
}

bool operator==(const actor_id& a, const actor_id& b) noexcept {
  if (a.rep_ == b.rep_) return true;
  if (!a.rep_ || !b.rep_) return false;
  return a.hash() == b.hash() && a.rep_->ns_size == b.rep_->ns_size && a.rep_->type_size == b.rep_->type_size &&
         a.rep_->key_size == b.rep_->key_size &&
         std::memcmp(a.rep_->bytes(), b.rep_->bytes(), a.rep_->ns_size + a.rep_->type_size + a.rep_->key_size) == 0;
}

} // namespace aether
