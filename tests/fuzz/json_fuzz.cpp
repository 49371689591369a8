// Decodes arbitrary bytes into a nested declared type. A decode must fail with malformed_payload or succeed;
// what succeeds must encode, decode to an equal value and encode to the same text again.
#include <aether/runtime/json.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

struct leaf {
  std::string name;
  std::int32_t count = 0;
  std::optional<double> ratio;
  std::optional<bool> flag;
  std::vector<std::uint8_t> bytes;
  std::optional<float> weight;

  friend bool operator==(const leaf&, const leaf&) = default;
};
AETHER_JSON_FIELDS(leaf, name, count, ratio, flag, bytes, weight)

struct root {
  std::int64_t id = 0;
  std::optional<std::uint64_t> big;
  std::optional<std::int8_t> small;
  std::optional<std::string> text;
  std::optional<std::vector<leaf>> leaves;
  std::optional<std::map<std::string, leaf>> by_name;
  std::optional<leaf> extra;
  std::optional<std::vector<std::vector<std::string>>> grid;
  std::optional<aether::json::raw> payload;
  std::optional<std::map<std::string, std::vector<std::int16_t>>> series;
  std::optional<double> value;
  std::optional<std::uint16_t> port;

  friend bool operator==(const root&, const root&) = default;
};
AETHER_JSON_FIELDS(root, id, big, small, text, leaves, by_name, extra, grid, payload, series, value, port)

} // namespace fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input{reinterpret_cast<const char*>(data), size};
  const auto first = aether::json::decode<fuzz::root>(input);
  if (!first.has_value()) {
    if (first.error().code() != aether::errc::malformed_payload || first.error().detail().empty()) __builtin_trap();
    return 0;
  }
  // Re-encoding can be longer than the input (escapes), so no limit the second time.
  const auto text = aether::json::encode(*first);
  const auto second = aether::json::decode<fuzz::root>(text, std::numeric_limits<std::size_t>::max());
  if (!second.has_value() || !(*second == *first) || aether::json::encode(*second) != text) __builtin_trap();
  return 0;
}
