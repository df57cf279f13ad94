// The mecg serial protocol, version 1 (hardware/protocol.md), for the device side.
//
// Frame: A5 5A | type | length L | payload (L bytes) | CRC-16/CCITT-FALSE (little-endian) over
// type, length and payload. Multi-byte fields are little-endian.
//
// Plain C++11 with no Arduino dependency: the sketches include it, and tests/test_protocol.py
// compiles it on the PC (host_check/vectors.cpp) to check it against the spec's test vectors.
#ifndef MECG_PROTOCOL_H
#define MECG_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace mecg {

const uint8_t SYNC0 = 0xA5;
const uint8_t SYNC1 = 0x5A;
const uint8_t PROTOCOL_VERSION = 1;
const uint8_t MAX_PAYLOAD = 64;
const uint8_t FRAME_OVERHEAD = 6;  // sync (2), type, length, CRC (2)
const size_t MAX_FRAME = MAX_PAYLOAD + FRAME_OVERHEAD;
const uint8_t INFO_MAX_NAME = 32;

enum MsgType : uint8_t {
  DATA = 0x01,
  INFO = 0x02,
  ACK = 0x03,
  PULSE_EVENT = 0x04,
  IDENTIFY = 0x81,
  START = 0x82,
  STOP = 0x83,
  SET_RATE = 0x84,
  PULSE = 0x85,
  SCHEDULE = 0x86,
  PING = 0x87,
};

enum Status : uint8_t { OK = 0, BAD_ARG = 1, BUSY = 2, UNKNOWN = 3 };
enum Kind : uint8_t { AMPLIFIER = 1, TRIGGER_BOX = 2 };

const uint8_t DIGITAL_TRIG = 0x01;
const uint8_t DIGITAL_STROBE = 0x02;
const uint8_t STATUS_LEADOFF = 0x01;
const uint8_t STATUS_OVERFLOW = 0x02;

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR. crc16("123456789") == 0x29B1.
inline uint16_t crc16(const uint8_t *p, size_t n, uint16_t c = 0xFFFF) {
  while (n--) {
    c ^= (uint16_t)(*p++) << 8;
    for (uint8_t b = 0; b < 8; b++) c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
  }
  return c;
}

// Builds one frame in a caller's buffer (at least MAX_FRAME bytes).
class FrameWriter {
 public:
  FrameWriter(uint8_t *buf, uint8_t type) : b_(buf), n_(4) {
    b_[0] = SYNC0;
    b_[1] = SYNC1;
    b_[2] = type;
  }
  FrameWriter &u8(uint8_t v) {
    b_[n_++] = v;
    return *this;
  }
  FrameWriter &u16(uint16_t v) { return u8((uint8_t)v).u8((uint8_t)(v >> 8)); }
  FrameWriter &u32(uint32_t v) { return u16((uint16_t)v).u16((uint16_t)(v >> 16)); }
  FrameWriter &i24(int32_t v) {
    uint32_t u = (uint32_t)v;
    return u8((uint8_t)u).u8((uint8_t)(u >> 8)).u8((uint8_t)(u >> 16));
  }
  FrameWriter &text(const char *s, uint8_t max_len) {
    for (uint8_t i = 0; i < max_len && s[i]; i++) u8((uint8_t)s[i]);
    return *this;
  }
  // Fills in the length and the CRC; returns the frame's size in bytes.
  size_t finish() {
    b_[3] = (uint8_t)(n_ - 4);
    uint16_t c = crc16(b_ + 2, n_ - 2);
    b_[n_++] = (uint8_t)c;
    b_[n_++] = (uint8_t)(c >> 8);
    return n_;
  }

 private:
  uint8_t *b_;
  size_t n_;
};

// DATA: one sample. `ch` holds n (1-8) signed 24-bit ADC counts.
inline size_t build_data(uint8_t *buf, uint16_t seq, uint32_t t_us, uint8_t digital, uint8_t status,
                         const int32_t *ch, uint8_t n) {
  FrameWriter w(buf, DATA);
  w.u16(seq).u32(t_us).u8(digital).u8(status);
  for (uint8_t i = 0; i < n; i++) w.i24(ch[i]);
  return w.finish();
}

// INFO: the answer to IDENTIFY.
inline size_t build_info(uint8_t *buf, uint8_t kind, uint8_t n_channels, uint8_t n_digital, uint16_t rate_hz,
                         uint32_t lsb_pv, uint32_t uid, uint32_t t_us, const char *name) {
  FrameWriter w(buf, INFO);
  w.u8(PROTOCOL_VERSION).u8(kind).u8(n_channels).u8(n_digital).u16(rate_hz).u32(lsb_pv).u32(uid).u32(t_us);
  w.text(name, INFO_MAX_NAME);
  return w.finish();
}

// ACK: the answer to every other command.
inline size_t build_ack(uint8_t *buf, uint8_t command, uint8_t status, uint32_t t_us) {
  return FrameWriter(buf, ACK).u8(command).u8(status).u32(t_us).finish();
}

// PULSE_EVENT: the trigger box fired pulse `seq` with its rising edge at `t_us`.
inline size_t build_pulse_event(uint8_t *buf, uint16_t seq, uint32_t t_us, uint16_t width_ms, uint8_t code) {
  return FrameWriter(buf, PULSE_EVENT).u16(seq).u32(t_us).u16(width_ms).u8(code).finish();
}

// A received command frame.
struct Command {
  uint8_t type;
  uint8_t len;
  uint8_t payload[MAX_PAYLOAD];
  uint16_t u16(uint8_t off) const { return (uint16_t)(payload[off] | (payload[off + 1] << 8)); }
  uint8_t u8(uint8_t off) const { return payload[off]; }
};

// First judgement of a command: UNKNOWN type, BAD_ARG payload length, or OK to act on.
inline Status check_command(const Command &c) {
  int expected;
  switch (c.type) {
    case IDENTIFY:
    case START:
    case STOP:
    case PING: expected = 0; break;
    case SET_RATE: expected = 2; break;
    case PULSE: expected = 3; break;
    case SCHEDULE: expected = 6; break;
    default: return UNKNOWN;
  }
  return c.len == expected ? OK : BAD_ARG;
}

// Byte-at-a-time command parser with the spec's resynchronisation: anything that is not a whole
// valid frame is given up one byte at a time, so a frame starting inside garbage is still found.
class CommandParser {
 public:
  CommandParser() : n_(0), crc_errors_(0) {}

  // Feeds one received byte; returns true when it completed a valid command (see command()).
  bool feed(uint8_t byte) {
    if (n_ == sizeof(buf_)) shift(1);  // cannot happen with valid lengths; keeps the buffer bounded
    buf_[n_++] = byte;
    return scan();
  }
  // After feed() returned true: true again if the bytes already buffered hold one more command
  // (possible after a false candidate was given up); call until false.
  bool next() { return scan(); }
  const Command &command() const { return cmd_; }
  uint32_t crc_errors() const { return crc_errors_; }

 private:
  bool scan() {
    for (;;) {
      if (n_ == 0) return false;
      if (buf_[0] != SYNC0) { shift(1); continue; }
      if (n_ < 2) return false;
      if (buf_[1] != SYNC1) { shift(1); continue; }
      if (n_ < 4) return false;
      uint8_t type = buf_[2], len = buf_[3];
      if (type < 0x81 || len > MAX_PAYLOAD) { shift(1); continue; }
      size_t total = (size_t)len + FRAME_OVERHEAD;
      if (n_ < total) return false;
      uint16_t crc = (uint16_t)(buf_[total - 2] | (buf_[total - 1] << 8));
      if (crc16(buf_ + 2, (size_t)len + 2) != crc) {
        crc_errors_++;
        shift(1);
        continue;
      }
      cmd_.type = type;
      cmd_.len = len;
      memcpy(cmd_.payload, buf_ + 4, len);
      shift(total);
      return true;
    }
  }
  void shift(size_t k) {
    memmove(buf_, buf_ + k, n_ - k);
    n_ -= k;
  }

  uint8_t buf_[MAX_FRAME];
  size_t n_;
  uint32_t crc_errors_;
  Command cmd_;
};

}  // namespace mecg

#endif  // MECG_PROTOCOL_H
