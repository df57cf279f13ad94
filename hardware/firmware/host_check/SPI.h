// Host stand-in for the Arduino SPI library: transfer() returns queued bytes (0 when none).
#ifndef MECG_HOST_SPI_H
#define MECG_HOST_SPI_H

#include "Arduino.h"

#define MSBFIRST 1
#define SPI_MODE1 1

struct SPISettings {
  SPISettings(uint32_t, uint8_t, uint8_t) {}
};

class StubSPI {
 public:
  std::deque<uint8_t> miso;
  std::vector<uint8_t> mosi;
  void begin() {}
  void beginTransaction(const SPISettings &) {}
  void endTransaction() {}
  uint8_t transfer(uint8_t b) {
    mosi.push_back(b);
    if (miso.empty()) return 0;
    uint8_t v = miso.front();
    miso.pop_front();
    return v;
  }
};
extern StubSPI SPI;

#endif
