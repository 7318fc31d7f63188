// JsonValue: a small, strict, exception-free JSON reader/writer for the model
// metadata (replaces nlohmann json in src/: a fraction of its code size in the
// wasm module, and no way to abort on a wrong access).
//
// Reading (ParseJson) is strict RFC 8259: no comments, no trailing commas, no
// leading zeros, no NaN/Infinity, strings must be valid UTF-8 with valid
// escapes (surrogates paired), numbers must be finite doubles. Hostile-input
// limits: at most kMaxJsonBytes of text, kMaxJsonDepth levels of nesting
// (the parser recurses once per level, so the stack is bounded) and
// kMaxJsonValues values per document. Duplicate object keys are an error
// (except at the top level when the caller asks to get the first duplicate
// back: the model header reports those as "declared twice").
//
// Values: null, boolean, number (kept as signed / unsigned 64-bit integer when
// written without fraction or exponent and in range, else double), string,
// array, object. Object members are kept sorted by key (byte order), so
// iteration and Dump() are in key order, like nlohmann's default json.
// Accessors never abort: the wrong type gives a neutral value (0, "", empty).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace flawlens {

// Deepest nesting of arrays/objects accepted in a JSON document.
inline constexpr int kMaxJsonDepth = 64;
// Largest JSON text accepted (the model header limit, kMaxHeaderBytes).
inline constexpr size_t kMaxJsonBytes = size_t{16} << 20;
// Most values (scalars, arrays, objects, counted separately) in one document.
inline constexpr size_t kMaxJsonValues = size_t{1} << 20;

class JsonValue {
 public:
  enum class Type : uint8_t { kNull, kBool, kInt, kUint, kDouble, kString, kArray, kObject };

  JsonValue() = default;  // null
  JsonValue(std::nullptr_t) {}  // NOLINT(google-explicit-constructor)
  JsonValue(bool b) : type_(Type::kBool) { num_.b = b; }  // NOLINT
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  JsonValue(T v) {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_signed_v<T>) {
      type_ = Type::kInt;
      num_.i = static_cast<int64_t>(v);
    } else {
      type_ = Type::kUint;
      num_.u = static_cast<uint64_t>(v);
    }
  }
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  JsonValue(T v) : type_(Type::kDouble) {  // NOLINT(google-explicit-constructor)
    num_.d = static_cast<double>(v);
  }
  JsonValue(const char* s) : type_(Type::kString), str_(s) {}  // NOLINT
  JsonValue(std::string s) : type_(Type::kString), str_(std::move(s)) {}  // NOLINT
  static JsonValue Array();
  static JsonValue Object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_integer() const { return type_ == Type::kInt || type_ == Type::kUint; }
  bool is_number() const { return is_integer() || type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }
  // "null", "boolean", "number", "string", "array", "object".
  const char* type_name() const;

  bool as_bool() const { return type_ == Type::kBool && num_.b; }
  // Any number as a double (integers converted); 0 for other types.
  double as_double() const;
  // An integer value in [lo, hi] (not 3.0: integers are written without a
  // fraction). False, *out unchanged, otherwise.
  bool ToInt64(int64_t lo, int64_t hi, int64_t* out) const;
  const std::string& str() const { return str_; }  // "" unless a string

  // Arrays: the elements. Objects: the values, in key order. Else empty.
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const std::vector<JsonValue>& items() const { return items_; }
  const JsonValue& operator[](size_t i) const { return items_[i]; }  // i < size()
  // Objects: the keys, sorted, parallel to items().
  const std::vector<std::string>& keys() const { return keys_; }
  // Object member or nullptr (also when this is not an object).
  const JsonValue* Find(std::string_view key) const;

  // Building. Set() on an object inserts or replaces (keys stay sorted);
  // Push() appends to an array. Both return *this and are no-ops on the wrong
  // type.
  JsonValue& Set(std::string_view key, JsonValue value);
  JsonValue& Push(JsonValue value);

  // Compact JSON text; never fails: non-finite doubles become null, invalid
  // UTF-8 in strings becomes U+FFFD. Doubles use the fewest digits that read
  // back to the same double.
  std::string Dump() const;
  void DumpTo(std::string* out) const;

 private:
  friend class JsonParser;

  Type type_ = Type::kNull;
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
  } num_ = {};
  std::string str_;                 // kString
  std::vector<JsonValue> items_;    // kArray elements / kObject values
  std::vector<std::string> keys_;   // kObject keys, sorted, parallel to items_
};

// Parses `size` bytes of JSON text into *out. Any error (malformed text, a
// limit exceeded, duplicate keys) -> kBadHeader "<what>: ..." naming the
// problem and its byte offset. With `duplicate_top_key`, duplicate keys of the
// top-level object are not an error: the first one (in document order of its
// second occurrence) is returned there (the last value is kept); "" if none.
Status ParseJson(const char* data, size_t size, const std::string& what, JsonValue* out,
                 std::string* duplicate_top_key = nullptr);

}  // namespace flawlens
