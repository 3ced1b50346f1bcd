// Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
// constexpr and header-only, so keys can be grouped by slot without a server. Routing keys
// to nodes belongs to the cluster transport, not here.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tds {

inline constexpr std::uint16_t cluster_slot_count = 16384;  // fixed by the cluster spec

namespace detail {

// One entry per byte value: the CRC of that byte shifted through the polynomial 0x1021.
constexpr std::array<std::uint16_t, 256> make_crc16_table() noexcept {
  std::array<std::uint16_t, 256> table{};
  for (unsigned byte = 0; byte < 256; ++byte) {
    unsigned crc = byte << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
    }
    table[byte] = static_cast<std::uint16_t>(crc);
  }
  return table;
}

inline constexpr std::array<std::uint16_t, 256> crc16_table = make_crc16_table();

}  // namespace detail

// CRC16-CCITT in the XMODEM variant (polynomial 0x1021, initial value 0, no reflection),
// the one the cluster spec names.
constexpr std::uint16_t crc16_xmodem(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (const char c : bytes) {
    const auto index = static_cast<std::uint8_t>((crc >> 8) ^ static_cast<std::uint8_t>(c));
    crc = static_cast<std::uint16_t>((crc << 8) ^ detail::crc16_table[index]);
  }
  return crc;
}

// The part of the key that is hashed: between the first '{' and the first '}' after it, when
// that part is not empty; otherwise the whole key. So "{user1000}.following" and
// "{user1000}.followers" share a slot, while "foo{}{bar}" hashes in full.
constexpr std::string_view hash_tag(std::string_view key) noexcept {
  const std::size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const std::size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

constexpr std::uint16_t key_slot(std::string_view key) noexcept {
  return static_cast<std::uint16_t>(crc16_xmodem(hash_tag(key)) % cluster_slot_count);
}

}  // namespace tds
