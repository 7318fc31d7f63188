#include "model/json_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace flawlens {

namespace {

// Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates,
// <= U+10FFFF) starting at s[0] (s[0] >= 0x80), or 0 if invalid/incomplete.
size_t Utf8SequenceLength(const unsigned char* s, size_t avail) {
  const unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (avail < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  }
  return len;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void AppendUint(uint64_t u, std::string* out) {
  char buf[24];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  out->append(p, buf + sizeof buf);
}

// Shortest decimal that reads back to `d`, laid out like nlohmann's dump()
// (1.0, 0.001, 1e-05, 1.5e+20): the same text as nlohmann's, except in the
// rare cases where its Grisu2 is not the shortest.
void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    *out += "null";
    return;
  }
  if (std::signbit(d)) {
    out->push_back('-');
    d = -d;
  }
  if (d == 0) {
    *out += "0.0";
    return;
  }
  // Shortest correctly rounded "%.*e" that reads back to `d`: binary search
  // over 1..17 significant digits (if p digits read back, so do p + 1).
  char buf[40];
  int lo = 1, hi = 17;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    std::snprintf(buf, sizeof buf, "%.*e", mid - 1, d);
    if (std::strtod(buf, nullptr) == d) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  std::snprintf(buf, sizeof buf, "%.*e", lo - 1, d);
  std::string digits;
  const char* p = buf;
  for (; *p != 'e' && *p != '\0'; ++p) {
    if (*p != '.') digits.push_back(*p);
  }
  int exp10 = *p == 'e' ? std::atoi(p + 1) : 0;
  // printf rounds an exact tie to even, nlohmann's Grisu2 away from zero: on a
  // tie (digit lo + 1 is a 5 and the exact expansion ends there), round up.
  char next[48];
  std::snprintf(next, sizeof next, "%.*e", lo, d);
  if (lo < 17 && next[lo + 1] == '5') {
    char exact[800];  // a double has at most 767 significant digits
    std::snprintf(exact, sizeof exact, "%.767e", d);
    bool tie = exact[lo + 1] == '5';
    for (const char* q = exact + lo + 2; tie && *q != 'e' && *q != '\0'; ++q) tie = *q == '0';
    if (tie) {
      std::string up;  // the first lo digits of the exact expansion, plus one
      for (int i = 0; i <= lo && static_cast<int>(up.size()) < lo; ++i) {
        if (exact[i] != '.') up.push_back(exact[i]);
      }
      const char* ex = std::strchr(exact, 'e');
      int e = ex != nullptr ? std::atoi(ex + 1) : 0, i = lo;
      while (i > 0 && up[static_cast<size_t>(i - 1)] == '9') up[static_cast<size_t>(--i)] = '0';
      if (i == 0) {
        up.insert(up.begin(), '1');
        up.pop_back();
        ++e;
      } else {
        ++up[static_cast<size_t>(i - 1)];
      }
      std::snprintf(buf, sizeof buf, "%c.%se%d", up[0], up.c_str() + 1, e);
      if (std::strtod(buf, nullptr) == d) {
        digits = up;
        exp10 = e;
      }
    }
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // value = 0.DIGITS * 10^n
  if (k <= n && n <= 15) {
    *out += digits;
    out->append(static_cast<size_t>(n - k), '0');
    *out += ".0";
  } else if (0 < n && n <= 15) {
    out->append(digits, 0, static_cast<size_t>(n));
    out->push_back('.');
    out->append(digits, static_cast<size_t>(n), std::string::npos);
  } else if (-4 < n && n <= 0) {
    *out += "0.";
    out->append(static_cast<size_t>(-n), '0');
    *out += digits;
  } else {
    out->push_back(digits[0]);
    if (k > 1) {
      out->push_back('.');
      out->append(digits, 1, std::string::npos);
    }
    const int e = n - 1;
    out->push_back('e');
    out->push_back(e < 0 ? '-' : '+');
    const unsigned ae = static_cast<unsigned>(e < 0 ? -e : e);
    if (ae < 10) out->push_back('0');
    AppendUint(ae, out);
  }
}

void AppendString(const std::string& s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(p + i, n - i);
      if (len == 0) {
        *out += "\xEF\xBF\xBD";  // U+FFFD for an invalid byte
        ++i;
      } else {
        out->append(s, i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

bool KeyLess(const std::string& a, std::string_view b) { return std::string_view(a) < b; }

// Attacker-controlled text quoted in messages: at most 40 bytes.
std::string Quote(const std::string& s) { return s.size() <= 40 ? s : s.substr(0, 37) + "..."; }

}  // namespace

// ---- JsonValue ------------------------------------------------------------------

JsonValue JsonValue::Array() {
  JsonValue v;
  v.type_ = Type::kArray;
  return v;
}

JsonValue JsonValue::Object() {
  JsonValue v;
  v.type_ = Type::kObject;
  return v;
}

const char* JsonValue::type_name() const {
  switch (type_) {
    case Type::kNull: return "null";
    case Type::kBool: return "boolean";
    case Type::kInt:
    case Type::kUint:
    case Type::kDouble: return "number";
    case Type::kString: return "string";
    case Type::kArray: return "array";
    case Type::kObject: return "object";
  }
  return "?";
}

double JsonValue::as_double() const {
  switch (type_) {
    case Type::kInt: return static_cast<double>(num_.i);
    case Type::kUint: return static_cast<double>(num_.u);
    case Type::kDouble: return num_.d;
    default: return 0.0;
  }
}

bool JsonValue::ToInt64(int64_t lo, int64_t hi, int64_t* out) const {
  int64_t v;
  if (type_ == Type::kInt) {
    v = num_.i;
  } else if (type_ == Type::kUint && num_.u <= static_cast<uint64_t>(INT64_MAX)) {
    v = static_cast<int64_t>(num_.u);
  } else {
    return false;
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = std::lower_bound(keys_.begin(), keys_.end(), key, KeyLess);
  if (it == keys_.end() || *it != key) return nullptr;
  return &items_[static_cast<size_t>(it - keys_.begin())];
}

JsonValue& JsonValue::Set(std::string_view key, JsonValue value) {
  if (type_ != Type::kObject) return *this;
  auto it = std::lower_bound(keys_.begin(), keys_.end(), key, KeyLess);
  const size_t i = static_cast<size_t>(it - keys_.begin());
  if (it != keys_.end() && *it == key) {
    items_[i] = std::move(value);
  } else {
    keys_.insert(it, std::string(key));
    items_.insert(items_.begin() + static_cast<ptrdiff_t>(i), std::move(value));
  }
  return *this;
}

JsonValue& JsonValue::Push(JsonValue value) {
  if (type_ == Type::kArray) items_.push_back(std::move(value));
  return *this;
}

std::string JsonValue::Dump() const {
  std::string s;
  DumpTo(&s);
  return s;
}

void JsonValue::DumpTo(std::string* out) const {
  switch (type_) {
    case Type::kNull: *out += "null"; break;
    case Type::kBool: *out += num_.b ? "true" : "false"; break;
    case Type::kInt:
      if (num_.i < 0) {
        out->push_back('-');
        AppendUint(0 - static_cast<uint64_t>(num_.i), out);
      } else {
        AppendUint(static_cast<uint64_t>(num_.i), out);
      }
      break;
    case Type::kUint: AppendUint(num_.u, out); break;
    case Type::kDouble: AppendDouble(num_.d, out); break;
    case Type::kString: AppendString(str_, out); break;
    case Type::kArray:
    case Type::kObject: {
      const bool obj = type_ == Type::kObject;
      out->push_back(obj ? '{' : '[');
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out->push_back(',');
        if (obj) {
          AppendString(keys_[i], out);
          out->push_back(':');
        }
        items_[i].DumpTo(out);
      }
      out->push_back(obj ? '}' : ']');
      break;
    }
  }
}

// ---- parser ---------------------------------------------------------------------

// Recursive descent, one level of recursion per level of nesting (bounded by
// kMaxJsonDepth). The first error wins; its byte offset is kept.
class JsonParser {
 public:
  JsonParser(const char* data, size_t size) : p_(data), n_(size) {}

  bool Parse(JsonValue* out, std::string* duplicate_top_key) {
    if (!Value(out, 0, duplicate_top_key)) return false;
    SkipSpace();
    if (pos_ != n_) return Fail("unexpected ", Describe(), " after the JSON value");
    return true;
  }

  const std::string& error() const { return error_; }
  size_t error_pos() const { return error_pos_; }
  bool depth_exceeded() const { return depth_exceeded_; }
  bool too_many_values() const { return too_many_values_; }

 private:
  bool Fail(const char* a, const std::string& b = "", const char* c = "") {
    if (error_.empty()) {
      error_ = std::string(a) + b + c;
      error_pos_ = pos_;
    }
    return false;
  }

  // The byte at pos_, for messages: 'x', byte 0x01 or end of input.
  std::string Describe() const {
    if (pos_ >= n_) return "end of input";
    const unsigned char c = static_cast<unsigned char>(p_[pos_]);
    char buf[16];
    if (c >= 0x20 && c < 0x7F) {
      std::snprintf(buf, sizeof buf, "'%c'", c);
    } else {
      std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    }
    return buf;
  }

  void SkipSpace() {
    while (pos_ < n_ && (p_[pos_] == ' ' || p_[pos_] == '\n' || p_[pos_] == '\r' || p_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Value(JsonValue* out, int depth, std::string* duplicate_top_key) {
    SkipSpace();
    if (++values_ > kMaxJsonValues) {
      too_many_values_ = true;
      return Fail("has more than ", std::to_string(kMaxJsonValues), " values");
    }
    if (pos_ >= n_) return Fail("expected a value, got end of input");
    const char c = p_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxJsonDepth) {
        depth_exceeded_ = true;
        return Fail("nested deeper than ", std::to_string(kMaxJsonDepth), " levels");
      }
      return c == '{' ? Object(out, depth + 1, duplicate_top_key) : Array(out, depth + 1);
    }
    if (c == '"') {
      out->type_ = JsonValue::Type::kString;
      return String(&out->str_);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return Number(out);
    if (Literal("true")) {
      *out = JsonValue(true);
      return true;
    }
    if (Literal("false")) {
      *out = JsonValue(false);
      return true;
    }
    if (Literal("null")) {
      *out = JsonValue();
      return true;
    }
    return Fail("expected a value, got ", Describe());
  }

  bool Literal(const char* word) {
    const size_t len = std::strlen(word);
    if (n_ - pos_ < len || std::memcmp(p_ + pos_, word, len) != 0) return false;
    pos_ += len;
    return true;
  }

  bool Array(JsonValue* out, int depth) {
    *out = JsonValue::Array();
    ++pos_;  // '['
    SkipSpace();
    if (pos_ < n_ && p_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      out->items_.emplace_back();
      if (!Value(&out->items_.back(), depth, nullptr)) return false;
      SkipSpace();
      if (pos_ < n_ && p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < n_ && p_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']' in an array, got ", Describe());
    }
  }

  bool Object(JsonValue* out, int depth, std::string* duplicate_top_key) {
    *out = JsonValue::Object();
    ++pos_;  // '{'
    SkipSpace();
    if (pos_ < n_ && p_[pos_] == '}') {
      ++pos_;
      return true;
    }
    std::vector<std::string> keys;
    std::vector<JsonValue> values;
    const size_t start = pos_;
    while (true) {
      SkipSpace();
      if (pos_ >= n_ || p_[pos_] != '"') {
        return Fail("expected a string key in an object, got ", Describe());
      }
      keys.emplace_back();
      if (!String(&keys.back())) return false;
      SkipSpace();
      if (pos_ >= n_ || p_[pos_] != ':') {
        return Fail("expected ':' after an object key, got ", Describe());
      }
      ++pos_;
      values.emplace_back();
      if (!Value(&values.back(), depth, nullptr)) return false;
      SkipSpace();
      if (pos_ < n_ && p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < n_ && p_[pos_] == '}') {
        ++pos_;
        break;
      }
      return Fail("expected ',' or '}' in an object, got ", Describe());
    }
    // Sort by key, document order among equal keys.
    std::vector<size_t> order(keys.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const int c = keys[a].compare(keys[b]);
      return c != 0 ? c < 0 : a < b;
    });
    size_t first_dup_pos = SIZE_MAX;  // document index of the earliest 2nd occurrence
    std::string first_dup;
    out->keys_.reserve(keys.size());
    out->items_.reserve(keys.size());
    for (size_t i = 0; i < order.size(); ++i) {
      const size_t k = order[i];
      if (i + 1 < order.size() && keys[order[i + 1]] == keys[k]) {
        // Duplicate: keep the last occurrence (this one is skipped).
        if (order[i + 1] < first_dup_pos) {
          first_dup_pos = order[i + 1];
          first_dup = keys[k];
        }
        continue;
      }
      out->keys_.push_back(std::move(keys[k]));
      out->items_.push_back(std::move(values[k]));
    }
    if (first_dup_pos != SIZE_MAX) {
      if (duplicate_top_key != nullptr) {
        *duplicate_top_key = first_dup;
      } else {
        const size_t end = pos_;
        pos_ = start - 1;
        Fail("duplicate key '", Quote(first_dup), "' in an object");
        pos_ = end;
        return false;
      }
    }
    return true;
  }

  bool Hex4(uint32_t* out) {
    if (n_ - pos_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = p_[pos_ + static_cast<size_t>(i)];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return false;
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  bool String(std::string* out) {
    ++pos_;  // '"'
    const unsigned char* u = reinterpret_cast<const unsigned char*>(p_);
    while (true) {
      if (pos_ >= n_) return Fail("unterminated string");
      const unsigned char c = u[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character ", Describe(), " in a string (must be escaped)");
      if (c >= 0x80) {
        const size_t len = Utf8SequenceLength(u + pos_, n_ - pos_);
        if (len == 0) return Fail("invalid UTF-8 (", Describe(), ") in a string");
        out->append(p_ + pos_, len);
        pos_ += len;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= n_) return Fail("unterminated string");
      const char e = p_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Fail("\\u must be followed by 4 hex digits");
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (n_ - pos_ < 2 || p_[pos_] != '\\' || p_[pos_ + 1] != 'u') {
              return Fail("high surrogate in \\u escape not followed by a low surrogate");
            }
            pos_ += 2;
            if (!Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) {
              return Fail("high surrogate in \\u escape not followed by a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          --pos_;
          return Fail("invalid escape \\", Describe().substr(0, 16), " in a string");
      }
    }
  }

  bool Digits() {
    const size_t start = pos_;
    while (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool Number(JsonValue* out) {
    const size_t start = pos_;
    const bool negative = p_[pos_] == '-';
    if (negative) ++pos_;
    if (pos_ < n_ && p_[pos_] == '0') {
      ++pos_;
      if (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') {
        return Fail("leading zero in a number");
      }
    } else if (!Digits()) {
      return Fail("expected a digit, got ", Describe());
    }
    bool integer = true;
    if (pos_ < n_ && p_[pos_] == '.') {
      ++pos_;
      if (!Digits()) return Fail("expected a digit after '.', got ", Describe());
      integer = false;
    }
    if (pos_ < n_ && (p_[pos_] == 'e' || p_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < n_ && (p_[pos_] == '+' || p_[pos_] == '-')) ++pos_;
      if (!Digits()) return Fail("expected a digit in the exponent, got ", Describe());
      integer = false;
    }
    if (integer) {
      uint64_t mag = 0;
      bool overflow = false;
      for (size_t i = start + (negative ? 1 : 0); i < pos_; ++i) {
        const uint64_t d = static_cast<uint64_t>(p_[i] - '0');
        if (mag > (UINT64_MAX - d) / 10) {
          overflow = true;
          break;
        }
        mag = mag * 10 + d;
      }
      if (!overflow && !negative) {
        *out = JsonValue(mag);
        return true;
      }
      if (!overflow && mag <= uint64_t{1} << 63) {
        *out = JsonValue(static_cast<int64_t>(0 - mag));
        return true;
      }
      // Out of the 64-bit range: a double, like nlohmann.
    }
    const std::string token(p_ + start, pos_ - start);
    char* end = nullptr;
    const double d = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size() || !std::isfinite(d)) {
      pos_ = start;
      return Fail("number ", Quote(token), " is out of the range of a double");
    }
    *out = JsonValue(d);
    return true;
  }

  const char* p_;
  size_t n_;
  size_t pos_ = 0;
  size_t values_ = 0;
  std::string error_;
  size_t error_pos_ = 0;
  bool depth_exceeded_ = false;
  bool too_many_values_ = false;
};

Status ParseJson(const char* data, size_t size, const std::string& what, JsonValue* out,
                 std::string* duplicate_top_key) {
  if (data == nullptr && size > 0) {
    return MakeError(ErrorCode::kInvalidArgument, "%s: null JSON buffer", what.c_str());
  }
  if (size > kMaxJsonBytes) {
    return MakeError(ErrorCode::kLimitExceeded, "%s: JSON text is %zu bytes (limit %zu)",
                     what.c_str(), size, kMaxJsonBytes);
  }
  if (duplicate_top_key != nullptr) duplicate_top_key->clear();
  JsonParser parser(size > 0 ? data : "", size);
  JsonValue v;
  if (!parser.Parse(&v, duplicate_top_key)) {
    if (parser.depth_exceeded() || parser.too_many_values()) {
      return MakeError(parser.depth_exceeded() ? ErrorCode::kBadHeader : ErrorCode::kLimitExceeded,
                       "%s: JSON %s (at byte %zu)", what.c_str(), parser.error().c_str(),
                       parser.error_pos());
    }
    return MakeError(ErrorCode::kBadHeader, "%s: malformed JSON at byte %zu: %s", what.c_str(),
                     parser.error_pos(),
                     parser.error().c_str());
  }
  *out = std::move(v);
  return Status::Ok();
}

}  // namespace flawlens
