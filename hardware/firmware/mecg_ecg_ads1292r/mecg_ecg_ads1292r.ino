// mecg ECG front end: an ADS1292R on an Arduino-class board, speaking the mecg serial protocol v1
// (hardware/protocol.md). Target: a 3.3 V SAMD21 board with native USB (Arduino Zero, MKR, Nano 33
// IoT); any 3.3 V board with SPI and an interrupt pin works with the pins below changed.
// Wiring: hardware/wiring.md. Build: hardware/README.md.
//
// What it does
//   * configures the ADS1292R (gain 6, 2.42 V reference, right-leg drive, lead-off detection),
//     conversions run continuously at the selected rate (125-2000 Hz, default 1000 Hz);
//   * on each DRDY falling edge the interrupt stores micros() (the sample's device time);
//     the main loop reads the 72-bit result over SPI, samples the TRIG and STROBE inputs and,
//     when streaming, sends one DATA frame (seq, t_us, digital, status, channels);
//   * answers IDENTIFY (INFO), START, STOP, SET_RATE, PING (ACK), unknown commands (ACK UNKNOWN).

#include <Arduino.h>
#include <SPI.h>
#include <MecgProtocol.h>

// ---------------------------------------------------------------- configuration
#ifndef N_CHANNELS
#define N_CHANNELS 1  // 1: ECG on channel 2 (channel 1 powered down), as on common breakouts; 2: both
#endif
#define HOST Serial  // native USB CDC on SAMD21 (baud ignored); a UART bridge needs 921600 baud
const uint32_t HOST_BAUD = 921600;
const char FIRMWARE_NAME[] = "mecg-ads1292r 1.0";

// Pins (Arduino Zero / Nano 33 IoT numbering). SPI uses the board's hardware SPI pins.
const uint8_t PIN_CS = 10;
const uint8_t PIN_DRDY = 2;    // ADS1292R DRDY (active low), interrupt capable
const uint8_t PIN_START = 5;   // ADS1292R START
const uint8_t PIN_PWDN = 4;    // ADS1292R PWDN/RESET (active low)
const uint8_t PIN_TRIG = 6;    // trigger box TTL, through a 6N137 optocoupler (output inverted)
const uint8_t PIN_STROBE = 7;  // camera exposure output, through a 6N137 optocoupler
const bool TRIG_ACTIVE_LOW = true;
const bool STROBE_ACTIVE_LOW = true;

// One ADC count at the electrodes: 2 x 2.42 V / gain 6 / 2^24 = 48.081 nV.
const uint32_t LSB_PV = 48081;
const uint16_t DEFAULT_RATE_HZ = 1000;

// ---------------------------------------------------------------- ADS1292R
namespace ads {
const uint8_t WAKEUP = 0x02, STANDBY = 0x04, RESET = 0x06, START = 0x08, STOP = 0x0A;
const uint8_t RDATAC = 0x10, SDATAC = 0x11, RDATA = 0x12, RREG = 0x20, WREG = 0x40;
const uint8_t REG_ID = 0x00, CONFIG1 = 0x01, CONFIG2 = 0x02, LOFF = 0x03, CH1SET = 0x04, CH2SET = 0x05;
const uint8_t RLD_SENS = 0x06, LOFF_SENS = 0x07, LOFF_STAT = 0x08, RESP1 = 0x09, RESP2 = 0x0A, GPIO = 0x0B;
const uint8_t ID_MASK = 0x1F, ID_ADS1292X = 0x13;  // bit 4 set, bits 1:0 = 11 (ADS1292/ADS1292R)
const SPISettings SPI_CFG(2000000, MSBFIRST, SPI_MODE1);  // SPI mode 1 (CPOL 0, CPHA 1), 2 MHz
}  // namespace ads

void ads_command(uint8_t op) {
  SPI.beginTransaction(ads::SPI_CFG);
  digitalWrite(PIN_CS, LOW);
  SPI.transfer(op);
  delayMicroseconds(4);  // >= 4 tCLK before CS high
  digitalWrite(PIN_CS, HIGH);
  SPI.endTransaction();
  delayMicroseconds(4);
}

void ads_write(uint8_t reg, uint8_t value) {
  SPI.beginTransaction(ads::SPI_CFG);
  digitalWrite(PIN_CS, LOW);
  SPI.transfer(ads::WREG | reg);
  SPI.transfer(0x00);  // one register
  SPI.transfer(value);
  delayMicroseconds(4);
  digitalWrite(PIN_CS, HIGH);
  SPI.endTransaction();
  delayMicroseconds(4);
}

uint8_t ads_read(uint8_t reg) {
  SPI.beginTransaction(ads::SPI_CFG);
  digitalWrite(PIN_CS, LOW);
  SPI.transfer(ads::RREG | reg);
  SPI.transfer(0x00);
  uint8_t v = SPI.transfer(0x00);
  delayMicroseconds(4);
  digitalWrite(PIN_CS, HIGH);
  SPI.endTransaction();
  return v;
}

// CONFIG1 data-rate bits for a rate in Hz, 0xFF if the firmware does not offer it.
uint8_t rate_bits(uint16_t hz) {
  switch (hz) {
    case 125: return 0x00;
    case 250: return 0x01;
    case 500: return 0x02;
    case 1000: return 0x03;
    case 2000: return 0x04;
    default: return 0xFF;
  }
}

// Stops continuous reading, writes every register for `hz`, restarts continuous reading.
void ads_configure(uint16_t hz) {
  digitalWrite(PIN_START, LOW);
  ads_command(ads::SDATAC);
  ads_write(ads::CONFIG1, rate_bits(hz));  // continuous conversion, data rate
  ads_write(ads::CONFIG2, 0xE0);           // bit 7 must be 1, lead-off comparators on, reference buffer on, 2.42 V
  ads_write(ads::LOFF, 0x10);              // lead-off: 95 % / 5 % thresholds, 6 nA DC current
  ads_write(ads::CH1SET, N_CHANNELS == 2 ? 0x00 : 0x81);  // gain 6 normal input / powered down, shorted
  ads_write(ads::CH2SET, 0x00);            // gain 6, normal electrode input
  ads_write(ads::RLD_SENS, 0x2C);          // right-leg drive on, derived from channel 2
  ads_write(ads::LOFF_SENS, N_CHANNELS == 2 ? 0x0F : 0x0C);  // lead-off detection on the used inputs
  ads_write(ads::RESP1, 0x02);             // respiration off (bit 1 must be 1)
  ads_write(ads::RESP2, 0x03);             // RLDREF internal (bit 0 must be 1)
  ads_command(ads::RDATAC);
  digitalWrite(PIN_START, HIGH);
}

bool ads_begin() {
  pinMode(PIN_CS, OUTPUT);
  digitalWrite(PIN_CS, HIGH);
  pinMode(PIN_START, OUTPUT);
  digitalWrite(PIN_START, LOW);
  pinMode(PIN_PWDN, OUTPUT);
  pinMode(PIN_DRDY, INPUT_PULLUP);
  SPI.begin();
  digitalWrite(PIN_PWDN, LOW);  // hardware reset
  delay(2);
  digitalWrite(PIN_PWDN, HIGH);
  delay(500);  // power-on reset (2^18 tCLK at 512 kHz) and reference settling
  ads_command(ads::RESET);
  delay(1);
  ads_command(ads::SDATAC);
  return (ads_read(ads::REG_ID) & ads::ID_MASK) == ads::ID_ADS1292X;
}

// ---------------------------------------------------------------- device state
volatile bool drdy_flag = false;
volatile uint32_t drdy_us = 0;

void on_drdy() {
  drdy_us = micros();
  drdy_flag = true;
}

uint16_t rate_hz = DEFAULT_RATE_HZ;
bool streaming = false;
bool ads_ok = false;
uint16_t seq = 0;
bool overflow = false;
mecg::CommandParser parser;
uint8_t tx[mecg::MAX_FRAME];

uint32_t device_uid() {
#if defined(ARDUINO_ARCH_SAMD)
  // SAMD21 128-bit serial number (datasheet 9.3.3), folded to 32 bits.
  return *(volatile uint32_t *)0x0080A00C ^ *(volatile uint32_t *)0x0080A040 ^ *(volatile uint32_t *)0x0080A044 ^
         *(volatile uint32_t *)0x0080A048;
#elif defined(DEVICE_UID)
  return DEVICE_UID;
#else
  return 0x4D454347;  // "MECG": set -DDEVICE_UID=... per board when the chip has no serial number
#endif
}

uint8_t digital_inputs() {
  uint8_t d = 0;
  if ((digitalRead(PIN_TRIG) == LOW) == TRIG_ACTIVE_LOW) d |= mecg::DIGITAL_TRIG;
  if ((digitalRead(PIN_STROBE) == LOW) == STROBE_ACTIVE_LOW) d |= mecg::DIGITAL_STROBE;
  return d;
}

void send(size_t n) { HOST.write(tx, n); }

void send_ack(uint8_t command, uint8_t status) { send(mecg::build_ack(tx, command, status, micros())); }

void handle(const mecg::Command &c) {
  mecg::Status st = mecg::check_command(c);
  if (st != mecg::OK) {
    send_ack(c.type, st);
    return;
  }
  switch (c.type) {
    case mecg::IDENTIFY:
      send(mecg::build_info(tx, mecg::AMPLIFIER, N_CHANNELS, 2, rate_hz, LSB_PV, device_uid(), micros(), FIRMWARE_NAME));
      break;
    case mecg::START:
      if (!ads_ok) {
        send_ack(c.type, mecg::BUSY);  // no ADC answered at power-up: nothing to stream
        break;
      }
      if (!streaming) {
        seq = 0;
        overflow = false;
        noInterrupts();
        drdy_flag = false;  // start with the next conversion
        interrupts();
        streaming = true;
      }
      send_ack(c.type, mecg::OK);
      break;
    case mecg::STOP:
      streaming = false;  // DATA already written went out before this ACK
      send_ack(c.type, mecg::OK);
      break;
    case mecg::SET_RATE: {
      uint16_t hz = c.u16(0);
      if (streaming) {
        send_ack(c.type, mecg::BUSY);
      } else if (rate_bits(hz) == 0xFF) {
        send_ack(c.type, mecg::BAD_ARG);
      } else {
        rate_hz = hz;
        if (ads_ok) ads_configure(rate_hz);
        send_ack(c.type, mecg::OK);
      }
      break;
    }
    case mecg::PING:
      send_ack(c.type, mecg::OK);
      break;
    default:  // PULSE, SCHEDULE: trigger box commands
      send_ack(c.type, mecg::UNKNOWN);
      break;
  }
}

// Reads one conversion (status word + 2 channels, 24 bits each, MSB first) and sends it.
void sample(uint32_t t_us) {
  uint8_t raw[9];
  SPI.beginTransaction(ads::SPI_CFG);
  digitalWrite(PIN_CS, LOW);
  for (uint8_t i = 0; i < 9; i++) raw[i] = SPI.transfer(0x00);
  digitalWrite(PIN_CS, HIGH);
  SPI.endTransaction();
  uint8_t digital = digital_inputs();
  if (!streaming) return;
  uint32_t status_word = ((uint32_t)raw[0] << 16) | ((uint32_t)raw[1] << 8) | raw[2];
  uint8_t loff = (uint8_t)((status_word >> 15) & 0x1F);  // RLD, IN2N, IN2P, IN1N, IN1P
  int32_t ch[2];
  for (uint8_t k = 0; k < 2; k++) {
    uint32_t u = ((uint32_t)raw[3 + 3 * k] << 16) | ((uint32_t)raw[4 + 3 * k] << 8) | raw[5 + 3 * k];
    ch[k] = (int32_t)(u << 8) >> 8;  // sign-extend 24 -> 32 bits
  }
  uint8_t status = 0;
  if (loff & (N_CHANNELS == 2 ? 0x0F : 0x0C)) status |= mecg::STATUS_LEADOFF;
  if (overflow) status |= mecg::STATUS_OVERFLOW;
  const int32_t *first = N_CHANNELS == 2 ? ch : ch + 1;  // one channel: channel 2
  size_t n = mecg::build_data(tx, seq, t_us, digital, status, first, N_CHANNELS);
  if ((size_t)HOST.availableForWrite() >= n) {
    send(n);
    overflow = false;
  } else {
    overflow = true;  // dropped; the gap in seq tells the host how many
  }
  seq++;
}

void setup() {
  HOST.begin(HOST_BAUD);
  pinMode(PIN_TRIG, INPUT_PULLUP);
  pinMode(PIN_STROBE, INPUT_PULLUP);
  ads_ok = ads_begin();
  if (ads_ok) ads_configure(rate_hz);
  attachInterrupt(digitalPinToInterrupt(PIN_DRDY), on_drdy, FALLING);
}

void loop() {
  while (HOST.available() > 0) {
    if (parser.feed((uint8_t)HOST.read())) {
      do {
        handle(parser.command());
      } while (parser.next());
    }
  }
  if (drdy_flag) {
    noInterrupts();
    uint32_t t = drdy_us;
    drdy_flag = false;
    interrupts();
    sample(t);
  }
}
