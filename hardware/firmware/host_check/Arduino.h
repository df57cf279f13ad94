// Host stand-in for the Arduino core, just enough to compile and run the mecg sketches on a PC
// (tests/test_acquire_firmware.py). Time, pins, the serial port, SPI and EEPROM are simulated;
// harness.cpp drives them. Not for use on a board.
#ifndef MECG_HOST_ARDUINO_H
#define MECG_HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <deque>
#include <vector>

#define HIGH 1
#define LOW 0
#define INPUT 0
#define OUTPUT 1
#define INPUT_PULLUP 2
#define FALLING 2
#define RISING 3
#define A0 14

extern uint32_t stub_micros;
extern int stub_pins[64];
extern void (*stub_isr)();
struct StubEdge {
  int pin;
  int level;
  uint32_t t_us;
};
extern std::vector<StubEdge> stub_edges;

inline uint32_t micros() { return stub_micros; }
inline uint32_t millis() { return stub_micros / 1000; }
inline void delay(uint32_t ms) { stub_micros += ms * 1000; }
inline void delayMicroseconds(uint32_t us) { stub_micros += us; }
inline void pinMode(int pin, int mode) {
  if (mode == INPUT_PULLUP) stub_pins[pin] = HIGH;
}
inline void digitalWrite(int pin, int level) {
  if (stub_pins[pin] != level) stub_edges.push_back(StubEdge{pin, level, stub_micros});
  stub_pins[pin] = level;
}
inline int digitalRead(int pin) { return stub_pins[pin]; }
inline int analogRead(int) { return rand() & 1023; }
inline int digitalPinToInterrupt(int pin) { return pin; }
inline void attachInterrupt(int, void (*isr)(), int) { stub_isr = isr; }
inline void noInterrupts() {}
inline void interrupts() {}
inline void randomSeed(unsigned long s) { srand((unsigned)s); }
inline long random(long lo, long hi) { return hi > lo ? lo + (long)(rand() % (hi - lo)) : lo; }

class StubSerial {
 public:
  std::deque<uint8_t> in;
  std::vector<uint8_t> out;
  int room = 1 << 16;  // what availableForWrite() reports
  void begin(unsigned long) {}
  int available() { return (int)in.size(); }
  int read() {
    if (in.empty()) return -1;
    int b = in.front();
    in.pop_front();
    return b;
  }
  size_t write(const uint8_t *p, size_t n) {
    out.insert(out.end(), p, p + n);
    return n;
  }
  int availableForWrite() { return room; }
};
extern StubSerial Serial;

#endif
