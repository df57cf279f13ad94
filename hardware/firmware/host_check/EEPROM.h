// Host stand-in for the Arduino EEPROM library (1 kB, erased = 0xFF).
#ifndef MECG_HOST_EEPROM_H
#define MECG_HOST_EEPROM_H

#include "Arduino.h"

class StubEEPROM {
 public:
  uint8_t mem[1024];
  StubEEPROM() { memset(mem, 0xFF, sizeof(mem)); }
  template <typename T>
  T &get(int addr, T &v) {
    memcpy(&v, mem + addr, sizeof(T));
    return v;
  }
  template <typename T>
  const T &put(int addr, const T &v) {
    memcpy(mem + addr, &v, sizeof(T));
    return v;
  }
};
extern StubEEPROM EEPROM;

#endif
