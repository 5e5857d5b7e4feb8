#include "numbers.h"

#include <unistd.h>

#include <map>

#include "folder.h"

namespace tomobile {
namespace {

const char* SPACE = " \t\n\r\f\v";  // ASCII whitespace: the only characters stripped around a number

std::string strip(const std::string& text) {
  size_t a = text.find_first_not_of(SPACE), b = text.find_last_not_of(SPACE);
  return a == std::string::npos ? "" : text.substr(a, b - a + 1);
}

bool digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

std::string range(int64_t low, int64_t high) { return " from " + std::to_string(low) + " to " + std::to_string(high); }

std::string quoted(const std::string& text) { return "'" + text + "'"; }

}  // namespace

int64_t max_threads() {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return 4 * (cores > 0 ? cores : 1);
}

int64_t parse_int(const std::string& text, const std::string& what, int64_t low, int64_t high) {
  std::string stripped = strip(text);
  bool negative = !stripped.empty() && stripped[0] == '-';
  std::string body = negative ? stripped.substr(1) : stripped;
  size_t first = body.find_first_not_of('0');
  if (!digits(body) || (negative && first == std::string::npos))  // '-0' says no negative
    throw UserError(what + " " + quoted(text) + " is not an integer (digits 0-9 only)" + range(low, high));
  std::string significant = first == std::string::npos ? "0" : body.substr(first);
  bool fits = significant.size() <= 18;  // |value| < 1e18: exact in int64, beyond every bound
  int64_t value = fits ? std::stoll(significant) * (negative ? -1 : 1) : 0;
  if (!fits || value < low || value > high) {
    std::string shown = stripped.size() <= 30 ? (fits ? std::to_string(value) : stripped) : stripped.substr(0, 20) + "...";
    throw UserError(what + " " + shown + " is out of range; give an integer" + range(low, high));
  }
  return value;
}

int64_t parse_size(const std::string& text, const std::string& what) {
  static const std::map<std::string, int64_t> units = {
      {"", 1}, {"b", 1}, {"kb", 1000}, {"mb", 1000000}, {"gb", 1000000000}, {"tb", 1000000000000},
      {"pb", MAX_BYTES}, {"kib", int64_t{1} << 10}, {"mib", int64_t{1} << 20}, {"gib", int64_t{1} << 30},
      {"tib", int64_t{1} << 40}};
  const std::string bad = what + " " + quoted(text) +
                          " is not a size; give digits 0-9 and a unit, e.g. 64MB, 1.5GB, 512MiB or a byte count";
  std::string s = strip(text);
  size_t number_end = s.find_first_not_of("0123456789.");
  std::string number = s.substr(0, number_end), rest = number_end == std::string::npos ? "" : s.substr(number_end);
  if (!rest.empty() && rest[0] == ' ') rest = rest.substr(1);  // one space between number and unit
  size_t dot = number.find('.');
  std::string whole = number.substr(0, dot), fraction = dot == std::string::npos ? "" : number.substr(dot + 1);
  bool well_formed = dot == std::string::npos ? digits(whole) : (whole.empty() || digits(whole)) && digits(fraction);
  std::string unit;
  for (char c : rest) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) well_formed = false;
    unit += static_cast<char>(c | 0x20);
  }
  if (!well_formed || !units.count(unit)) throw UserError(bad);
  const int64_t scale = units.at(unit);
  // floor(0.f1f2...fk x scale), exactly: Horner from the last digit, each carry floored (an
  // integer plus a fraction below 1, divided by 10, floors as the integer alone does).
  int64_t carry = 0;
  for (auto it = fraction.rbegin(); it != fraction.rend(); ++it) carry = ((*it - '0') * scale + carry) / 10;
  size_t first = whole.find_first_not_of('0');
  std::string significant = first == std::string::npos ? "0" : whole.substr(first);
  // whole x scale + carry, within 1 PB: a whole part over 16 digits is past it whatever the unit.
  bool in_range = significant.size() <= 16;
  int64_t value = 0;
  if (in_range) {
    int64_t w = std::stoll(significant);
    in_range = w <= (MAX_BYTES - carry) / scale;
    value = in_range ? w * scale + carry : 0;
  }
  if (!in_range || value < 1 || value > MAX_BYTES)
    throw UserError(what + " " + quoted(text) + " is out of range; give 1 B to 1 PB (1000 TB)");
  return value;
}

}  // namespace tomobile
