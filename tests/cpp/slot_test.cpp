// Tests for Redis Cluster hash slots (slot.hpp): the cluster spec's CRC16 vector and its
// hash-tag examples. Routing by slot is tested with the cluster transport, not here.
#include "tdscache/slot.hpp"

#include <gtest/gtest.h>

namespace {

using tds::key_slot;

TEST(Slot, Crc16MatchesTheClusterSpecVector) {
  EXPECT_EQ(tds::crc16_xmodem("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("123456789"), 12739);
  EXPECT_EQ(tds::crc16_xmodem(""), 0);
}

TEST(Slot, IsUsableAtCompileTime) {
  static_assert(tds::crc16_xmodem("123456789") == 0x31C3);
  static_assert(key_slot("foo{bar}{zap}") == 5061);
}

TEST(Slot, EmptyTagHashesTheWholeKey) {
  EXPECT_EQ(key_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(key_slot("foo{}{bar}"), tds::crc16_xmodem("foo{}{bar}") % 16384);
}

TEST(Slot, TagRunsFromFirstOpenBraceToTheFirstCloseBraceAfterIt) {
  EXPECT_EQ(key_slot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
}

TEST(Slot, OnlyTheFirstTagCounts) {
  EXPECT_EQ(key_slot("foo{bar}{zap}"), 5061);
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
}

TEST(Slot, KeyWithoutClosingBraceHashesInFull) {
  EXPECT_EQ(key_slot("foo{bar"), tds::crc16_xmodem("foo{bar") % 16384);
  EXPECT_NE(key_slot("foo{bar"), key_slot("bar"));
  EXPECT_EQ(key_slot("foo}bar{"), tds::crc16_xmodem("foo}bar{") % 16384);
}

TEST(Slot, SlotIsAlwaysBelow16384) {
  EXPECT_LT(key_slot("tds:entity:state:product:2646610000000113574"), 16384);
  EXPECT_EQ(key_slot("tds:entity:state:product:2646610000000113574"),
            tds::crc16_xmodem("tds:entity:state:product:2646610000000113574") % 16384);
}

}  // namespace
