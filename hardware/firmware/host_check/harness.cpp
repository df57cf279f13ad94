// Runs an mecg sketch on a PC for the tests: g++ -std=c++11 -I. -I../libraries/MecgProtocol/src
//   -DSKETCH='"../mecg_trigger_box/mecg_trigger_box.ino"' harness.cpp
// and drive it with lines on stdin (one command per line, hex bytes space-separated):
//   setup | loop N | tick US N (advance US then loop, N times) | advance US | send HEX..
//   pin P LEVEL | level P | spi HEX.. | drdy | room N | out | edges | time
//   build_data SEQ T DIG STATUS CH.. | build_info KIND NCH NDIG RATE LSB UID T NAME
//   build_ack CMD STATUS T | build_pulse_event SEQ T WIDTH CODE | crc HEX.. | parse HEX..
#include <stdio.h>

#include <iostream>
#include <sstream>
#include <string>

#include "Arduino.h"
#include "EEPROM.h"
#include "SPI.h"

uint32_t stub_micros = 1000;
int stub_pins[64];
void (*stub_isr)() = 0;
std::vector<StubEdge> stub_edges;
StubSerial Serial;
StubSPI SPI;
StubEEPROM EEPROM;

#include SKETCH

static std::vector<uint8_t> hex_bytes(std::istringstream &in) {
  std::vector<uint8_t> v;
  std::string tok;
  while (in >> tok) v.push_back((uint8_t)strtoul(tok.c_str(), 0, 16));
  return v;
}

static void print_hex(const char *tag, const uint8_t *p, size_t n) {
  printf("%s", tag);
  for (size_t i = 0; i < n; i++) printf(" %02X", p[i]);
  printf("\n");
}

int main() {
  std::string line;
  uint8_t buf[mecg::MAX_FRAME];
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    if (!(in >> cmd)) continue;
    if (cmd == "setup") {
      setup();
    } else if (cmd == "loop") {
      long n = 1;
      in >> n;
      while (n-- > 0) loop();
    } else if (cmd == "tick") {
      unsigned long us = 0;
      long n = 1;
      in >> us >> n;
      while (n-- > 0) {
        stub_micros += (uint32_t)us;
        loop();
      }
    } else if (cmd == "advance") {
      unsigned long us = 0;
      in >> us;
      stub_micros += (uint32_t)us;
    } else if (cmd == "send") {
      std::vector<uint8_t> v = hex_bytes(in);
      Serial.in.insert(Serial.in.end(), v.begin(), v.end());
    } else if (cmd == "pin") {
      int p, l;
      in >> p >> l;
      stub_pins[p] = l;
    } else if (cmd == "level") {
      int p;
      in >> p;
      printf("level %d %d\n", p, stub_pins[p]);
    } else if (cmd == "spi") {
      std::vector<uint8_t> v = hex_bytes(in);
      SPI.miso.insert(SPI.miso.end(), v.begin(), v.end());
    } else if (cmd == "drdy") {
      if (stub_isr) stub_isr();
    } else if (cmd == "room") {
      in >> Serial.room;
    } else if (cmd == "out") {
      print_hex("out", Serial.out.data(), Serial.out.size());
      Serial.out.clear();
    } else if (cmd == "edges") {
      for (size_t i = 0; i < stub_edges.size(); i++)
        printf("edge %d %d %lu\n", stub_edges[i].pin, stub_edges[i].level, (unsigned long)stub_edges[i].t_us);
      stub_edges.clear();
    } else if (cmd == "time") {
      printf("time %lu\n", (unsigned long)stub_micros);
    } else if (cmd == "build_data") {
      unsigned long seq, t, dig, st;
      in >> seq >> t >> dig >> st;
      int32_t ch[8];
      uint8_t n = 0;
      long v;
      while (n < 8 && in >> v) ch[n++] = (int32_t)v;
      print_hex("frame", buf, mecg::build_data(buf, (uint16_t)seq, (uint32_t)t, (uint8_t)dig, (uint8_t)st, ch, n));
    } else if (cmd == "build_info") {
      unsigned long kind, nch, ndig, rate, lsb, uid, t;
      std::string name;
      in >> kind >> nch >> ndig >> rate >> lsb >> uid >> t;
      std::getline(in >> std::ws, name);
      print_hex("frame", buf,
                mecg::build_info(buf, (uint8_t)kind, (uint8_t)nch, (uint8_t)ndig, (uint16_t)rate, (uint32_t)lsb,
                                 (uint32_t)uid, (uint32_t)t, name.c_str()));
    } else if (cmd == "build_ack") {
      unsigned long c, st, t;
      in >> c >> st >> t;
      print_hex("frame", buf, mecg::build_ack(buf, (uint8_t)c, (uint8_t)st, (uint32_t)t));
    } else if (cmd == "build_pulse_event") {
      unsigned long seq, t, w, code;
      in >> seq >> t >> w >> code;
      print_hex("frame", buf, mecg::build_pulse_event(buf, (uint16_t)seq, (uint32_t)t, (uint16_t)w, (uint8_t)code));
    } else if (cmd == "crc") {
      std::vector<uint8_t> v = hex_bytes(in);
      printf("crc %u\n", (unsigned)mecg::crc16(v.data(), v.size()));
    } else if (cmd == "parse") {
      std::vector<uint8_t> v = hex_bytes(in);
      mecg::CommandParser p;
      for (size_t i = 0; i < v.size(); i++) {
        if (!p.feed(v[i])) continue;
        do {
          const mecg::Command &c = p.command();
          printf("cmd %u %u", (unsigned)c.type, (unsigned)c.len);
          for (uint8_t k = 0; k < c.len; k++) printf(" %02X", c.payload[k]);
          printf(" status %u\n", (unsigned)mecg::check_command(c));
        } while (p.next());
      }
      printf("crc_errors %u\n", (unsigned)p.crc_errors());
    } else {
      printf("error unknown command %s\n", cmd.c_str());
    }
    fflush(stdout);
  }
  return 0;
}
