// mecg trigger box: one TTL output (to the ECG amplifier's TRIG input) and one LED (in the
// camera's view) pulsed together, on command or on the box's own irregular schedule. Speaks the
// mecg serial protocol v1 (hardware/protocol.md). Target: an AVR Arduino (Nano, Uno, Mega: it keeps its
// board number in EEPROM).
// Wiring: hardware/wiring.md. Build: hardware/README.md.
//
// Commands: IDENTIFY (INFO), PULSE width_ms code (ACK, then PULSE_EVENT), SCHEDULE min max width
// (ACK), START / STOP the schedule (ACK), PING (ACK); anything else ACK UNKNOWN.

#include <Arduino.h>
#include <EEPROM.h>
#include <MecgProtocol.h>

// ---------------------------------------------------------------- configuration
#define HOST Serial
const uint32_t HOST_BAUD = 115200;
const char FIRMWARE_NAME[] = "mecg-trigger 1.0";
const uint8_t PIN_TTL = 8;  // BNC / TTL out to the amplifier's TRIG input (through its optocoupler)
const uint8_t PIN_LED = 9;  // LED driver transistor (see wiring.md)
const uint8_t PIN_NOISE = A0;  // floating analog pin: seeds random() and the board uid
const uint16_t MAX_WIDTH_MS = 1000;
const int UID_EEPROM_ADDR = 0;

// ---------------------------------------------------------------- state
mecg::CommandParser parser;
uint8_t tx[mecg::MAX_FRAME];
uint32_t uid = 0;

bool pulse_high = false;
uint32_t rise_us = 0;
uint32_t width_us = 0;
uint16_t pulse_seq = 0;

bool scheduling = false;
uint16_t sched_min_ms = 2000, sched_max_ms = 8000, sched_width_ms = 50;
uint32_t next_rise_us = 0;

uint32_t noise32() {
  uint32_t v = 0;
  for (uint8_t i = 0; i < 32; i++) v = (v << 1) ^ (uint32_t)(analogRead(PIN_NOISE) & 1) ^ (micros() & 1);
  return v;
}

// A board number kept in EEPROM: drawn once, the same after every power-up.
uint32_t load_uid() {
  uint32_t v;
  EEPROM.get(UID_EEPROM_ADDR, v);
  if (v == 0xFFFFFFFFUL || v == 0) {
    v = noise32() | 1;
    EEPROM.put(UID_EEPROM_ADDR, v);
  }
  return v;
}

void send(size_t n) { HOST.write(tx, n); }

void send_ack(uint8_t command, uint8_t status) { send(mecg::build_ack(tx, command, status, micros())); }

// Raises both outputs now and reports the rising edge.
void fire(uint16_t width_ms, uint8_t code) {
  digitalWrite(PIN_TTL, HIGH);
  digitalWrite(PIN_LED, HIGH);
  rise_us = micros();
  width_us = (uint32_t)width_ms * 1000UL;
  pulse_high = true;
  send(mecg::build_pulse_event(tx, pulse_seq++, rise_us, width_ms, code));
}

uint32_t next_gap_us() { return 1000UL * (uint32_t)random(sched_min_ms, (long)sched_max_ms + 1); }

void handle(const mecg::Command &c) {
  mecg::Status st = mecg::check_command(c);
  if (st != mecg::OK) {
    send_ack(c.type, st);
    return;
  }
  switch (c.type) {
    case mecg::IDENTIFY:
      send(mecg::build_info(tx, mecg::TRIGGER_BOX, 0, 0, 0, 0, uid, micros(), FIRMWARE_NAME));
      break;
    case mecg::PULSE: {
      uint16_t width_ms = c.u16(0);
      uint8_t code = c.u8(2);
      if (width_ms < 1 || width_ms > MAX_WIDTH_MS) {
        send_ack(c.type, mecg::BAD_ARG);
      } else if (pulse_high) {
        send_ack(c.type, mecg::BUSY);
      } else {
        // ACK first, then the event: fire() reports the edge right after raising it.
        send_ack(c.type, mecg::OK);
        fire(width_ms, code);
      }
      break;
    }
    case mecg::SCHEDULE: {
      uint16_t lo = c.u16(0), hi = c.u16(2), w = c.u16(4);
      if (w < 1 || w > MAX_WIDTH_MS || w >= lo || lo > hi) {
        send_ack(c.type, mecg::BAD_ARG);
      } else {
        sched_min_ms = lo;
        sched_max_ms = hi;
        sched_width_ms = w;
        send_ack(c.type, mecg::OK);
      }
      break;
    }
    case mecg::START:
      if (!scheduling) {
        scheduling = true;
        next_rise_us = micros() + next_gap_us();
      }
      send_ack(c.type, mecg::OK);
      break;
    case mecg::STOP:
      scheduling = false;
      send_ack(c.type, mecg::OK);
      break;
    case mecg::PING:
      send_ack(c.type, mecg::OK);
      break;
    default:  // SET_RATE: amplifier command
      send_ack(c.type, mecg::UNKNOWN);
      break;
  }
}

void setup() {
  pinMode(PIN_TTL, OUTPUT);
  pinMode(PIN_LED, OUTPUT);
  digitalWrite(PIN_TTL, LOW);
  digitalWrite(PIN_LED, LOW);
  HOST.begin(HOST_BAUD);
  randomSeed(noise32());
  uid = load_uid();
}

void loop() {
  while (HOST.available() > 0) {
    if (parser.feed((uint8_t)HOST.read())) {
      do {
        handle(parser.command());
      } while (parser.next());
    }
  }
  uint32_t now = micros();
  if (pulse_high && (uint32_t)(now - rise_us) >= width_us) {
    digitalWrite(PIN_TTL, LOW);
    digitalWrite(PIN_LED, LOW);
    pulse_high = false;
  }
  if (scheduling && !pulse_high && (int32_t)(now - next_rise_us) >= 0) {
    fire(sched_width_ms, 0);
    next_rise_us = rise_us + next_gap_us();  // rise to rise
  }
}
