// JsonValue / ParseJson (src/model/json_value.h): the strict JSON reader and
// writer of the model metadata. Valid documents, every class of malformed
// input (each with the message naming the problem and the byte), the
// hostile-input limits, and Dump() laid out like nlohmann's dump().
#include "model/json_value.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_models.h"

namespace flawlens {
namespace {

Status Parse(const std::string& text, JsonValue* out, std::string* dup = nullptr) {
  return ParseJson(text.data(), text.size(), "doc", out, dup);
}

JsonValue MustParse(const std::string& text) {
  JsonValue v;
  Status st = Parse(text, &v);
  EXPECT_TRUE(st.ok()) << text << " -> " << st.ToString();
  return v;
}

// The error of `text`: code and message.
Status Error(const std::string& text) {
  JsonValue v;
  Status st = Parse(text, &v);
  EXPECT_FALSE(st.ok()) << "accepted: " << text;
  return st;
}

#define EXPECT_JSON_ERROR(text, substring)                                  \
  do {                                                                      \
    Status _st = Error(text);                                               \
    EXPECT_EQ(_st.code(), ErrorCode::kBadHeader) << _st.ToString();         \
    EXPECT_NE(_st.message().find(substring), std::string::npos)             \
        << "message: " << _st.message() << "\nexpected to contain: " << substring; \
    EXPECT_EQ(_st.message().rfind("doc: ", 0), 0u) << _st.message();         \
  } while (0)

TEST(JsonValue, Scalars) {
  EXPECT_TRUE(MustParse("null").is_null());
  EXPECT_TRUE(MustParse(" true ").as_bool());
  EXPECT_TRUE(MustParse("false").is_bool());
  EXPECT_FALSE(MustParse("false").as_bool());
  EXPECT_EQ(MustParse("\"hi\"").str(), "hi");

  int64_t i = 0;
  JsonValue v = MustParse("42");
  EXPECT_TRUE(v.is_integer());
  EXPECT_TRUE(v.ToInt64(0, 100, &i));
  EXPECT_EQ(i, 42);
  EXPECT_FALSE(v.ToInt64(0, 41, &i));  // out of range: false, *out unchanged
  EXPECT_EQ(i, 42);
  EXPECT_TRUE(MustParse("-7").ToInt64(-10, 10, &i));
  EXPECT_EQ(i, -7);
  EXPECT_TRUE(MustParse("-0").ToInt64(0, 0, &i));
  EXPECT_TRUE(MustParse("-9223372036854775808").ToInt64(INT64_MIN, 0, &i));
  EXPECT_EQ(i, INT64_MIN);
  // uint64 max is an integer but not an int64.
  v = MustParse("18446744073709551615");
  EXPECT_TRUE(v.is_integer());
  EXPECT_FALSE(v.ToInt64(INT64_MIN, INT64_MAX, &i));
  // Beyond 64 bits: a double (like nlohmann).
  v = MustParse("18446744073709551616");
  EXPECT_EQ(v.type(), JsonValue::Type::kDouble);
  EXPECT_DOUBLE_EQ(v.as_double(), 18446744073709551616.0);
  EXPECT_EQ(MustParse("-9223372036854775809").type(), JsonValue::Type::kDouble);

  // Floats are numbers, never integers (3.0 is not 3).
  v = MustParse("3.0");
  EXPECT_TRUE(v.is_number());
  EXPECT_FALSE(v.is_integer());
  EXPECT_FALSE(v.ToInt64(0, 10, &i));
  EXPECT_DOUBLE_EQ(MustParse("-1.5e3").as_double(), -1500.0);
  EXPECT_DOUBLE_EQ(MustParse("2E-2").as_double(), 0.02);
  EXPECT_DOUBLE_EQ(MustParse("1e+2").as_double(), 100.0);
  EXPECT_EQ(MustParse("1e-400").as_double(), 0.0);  // underflow is fine
  EXPECT_EQ(MustParse("0.10000000149011612").as_double(), static_cast<double>(0.1f));

  // Wrong-type accessors are neutral, never abort.
  JsonValue s = MustParse("\"x\"");
  EXPECT_EQ(s.as_double(), 0.0);
  EXPECT_FALSE(s.as_bool());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.Find("x"), nullptr);
  EXPECT_EQ(MustParse("1").str(), "");
}

TEST(JsonValue, ArraysAndObjects) {
  JsonValue v = MustParse(" { \"b\" : [1, 2.5, \"s\", null, true, {}, []], \"a\":{\"x\":-1} } ");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v.keys()[0], "a");  // sorted by key
  EXPECT_EQ(v.keys()[1], "b");
  const JsonValue* b = v.Find("b");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->is_array());
  ASSERT_EQ(b->size(), 7u);
  EXPECT_TRUE((*b)[0].is_integer());
  EXPECT_EQ((*b)[1].as_double(), 2.5);
  EXPECT_EQ((*b)[2].str(), "s");
  EXPECT_TRUE((*b)[3].is_null());
  EXPECT_TRUE((*b)[4].as_bool());
  EXPECT_TRUE((*b)[5].is_object() && (*b)[5].empty());
  EXPECT_TRUE((*b)[6].is_array() && (*b)[6].empty());
  ASSERT_NE(v.Find("a"), nullptr);
  ASSERT_NE(v.Find("a")->Find("x"), nullptr);
  EXPECT_EQ(v.Find("c"), nullptr);
  EXPECT_STREQ(v.type_name(), "object");
  EXPECT_STREQ((*b)[1].type_name(), "number");
  EXPECT_STREQ((*b)[4].type_name(), "boolean");
}

TEST(JsonValue, Strings) {
  EXPECT_EQ(MustParse(R"("a\"b\\c\/d\b\f\n\r\t")").str(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(MustParse(R"("\u0041\u00e9\u20AC")").str(), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(MustParse(R"("\ud83d\ude00")").str(), "\xF0\x9F\x98\x80");  // surrogate pair
  EXPECT_EQ(MustParse("\"\xF0\x9F\x98\x80 \xC3\xA9\"").str(), "\xF0\x9F\x98\x80 \xC3\xA9");
  const std::string nul = MustParse(R"("a\u0000b")").str();
  EXPECT_EQ(nul.size(), 3u);
  EXPECT_EQ(nul[1], '\0');
}

TEST(JsonValue, MalformedInputsNameTheProblem) {
  EXPECT_JSON_ERROR("", "expected a value, got end of input");
  EXPECT_JSON_ERROR("   ", "at byte 3");
  EXPECT_JSON_ERROR("{\"a\": [1, 2", "expected ',' or ']' in an array, got end of input");
  EXPECT_JSON_ERROR("[1 2]", "at byte 3: expected ',' or ']' in an array, got '2'");
  EXPECT_JSON_ERROR("[1,]", "expected a value, got ']'");
  EXPECT_JSON_ERROR("{\"a\":1,}", "expected a string key in an object, got '}'");
  EXPECT_JSON_ERROR("{a:1}", "expected a string key in an object, got 'a'");
  EXPECT_JSON_ERROR("{\"a\" 1}", "expected ':' after an object key, got '1'");
  EXPECT_JSON_ERROR("{\"a\":1 \"b\":2}", "expected ',' or '}' in an object");
  EXPECT_JSON_ERROR("{\"a\":1}}", "unexpected '}' after the JSON value");
  EXPECT_JSON_ERROR("1 2", "unexpected '2' after the JSON value");
  EXPECT_JSON_ERROR("tru", "expected a value, got 't'");
  EXPECT_JSON_ERROR("nul", "expected a value");
  EXPECT_JSON_ERROR("True", "expected a value, got 'T'");
  EXPECT_JSON_ERROR("NaN", "expected a value, got 'N'");
  EXPECT_JSON_ERROR("Infinity", "expected a value");
  EXPECT_JSON_ERROR("-Infinity", "expected a digit, got 'I'");
  EXPECT_JSON_ERROR("// c\n1", "expected a value, got '/'");
  EXPECT_JSON_ERROR("'a'", "expected a value, got '''");
  // Numbers.
  EXPECT_JSON_ERROR("01", "leading zero in a number");
  EXPECT_JSON_ERROR("-01", "leading zero");
  EXPECT_JSON_ERROR("+1", "expected a value, got '+'");
  EXPECT_JSON_ERROR("-", "expected a digit, got end of input");
  EXPECT_JSON_ERROR("1.", "expected a digit after '.'");
  EXPECT_JSON_ERROR(".5", "expected a value, got '.'");
  EXPECT_JSON_ERROR("1e", "expected a digit in the exponent");
  EXPECT_JSON_ERROR("1e+", "expected a digit in the exponent");
  EXPECT_JSON_ERROR("0x10", "unexpected 'x'");
  EXPECT_JSON_ERROR("1e400", "number 1e400 is out of the range of a double");
  EXPECT_JSON_ERROR("-1e400", "out of the range");
  EXPECT_JSON_ERROR("[" + std::string(500, '9') + "e999]", "out of the range");
  // Strings.
  EXPECT_JSON_ERROR("\"abc", "unterminated string");
  EXPECT_JSON_ERROR("\"abc\\", "unterminated string");
  EXPECT_JSON_ERROR("\"a\nb\"", "control character byte 0x0a in a string");
  EXPECT_JSON_ERROR(std::string("\"a\0b\"", 5), "control character byte 0x00");
  EXPECT_JSON_ERROR("\"\\x\"", "invalid escape \\'x'");
  EXPECT_JSON_ERROR("\"\\u12\"", "\\u must be followed by 4 hex digits");
  EXPECT_JSON_ERROR("\"\\u12G4\"", "4 hex digits");
  EXPECT_JSON_ERROR("\"\\ud800\"", "high surrogate");
  EXPECT_JSON_ERROR("\"\\ud800\\u0041\"", "high surrogate");
  EXPECT_JSON_ERROR("\"\\udc00\"", "unpaired low surrogate");
  EXPECT_JSON_ERROR("\"\xFF\"", "invalid UTF-8 (byte 0xff)");
  EXPECT_JSON_ERROR("\"\xC0\xAF\"", "invalid UTF-8");      // overlong '/'
  EXPECT_JSON_ERROR("\"\xE0\x80\xAF\"", "invalid UTF-8");  // overlong
  EXPECT_JSON_ERROR("\"\xED\xA0\x80\"", "invalid UTF-8");  // UTF-16 surrogate
  EXPECT_JSON_ERROR("\"\xF4\x90\x80\x80\"", "invalid UTF-8");  // > U+10FFFF
  EXPECT_JSON_ERROR("\"\xC3\"", "invalid UTF-8");          // truncated sequence
  EXPECT_JSON_ERROR("\"\x80\"", "invalid UTF-8");          // lone continuation
  // Byte offsets point at the problem.
  EXPECT_JSON_ERROR("[1, 2, x]", "at byte 7:");
  EXPECT_JSON_ERROR("{\"k\": \"v\", \"k2\": [tru]}", "at byte 18:");
}

TEST(JsonValue, DuplicateKeys) {
  // Nested duplicates are always an error.
  EXPECT_JSON_ERROR("{\"a\":{\"x\":1,\"x\":2}}", "duplicate key 'x' in an object");
  EXPECT_JSON_ERROR("[{\"\":1,\"\":2}]", "duplicate key ''");
  // Top level: an error unless the caller asks for the duplicate.
  EXPECT_JSON_ERROR("{\"b\":1,\"a\":2,\"b\":3}", "duplicate key 'b'");
  JsonValue v;
  std::string dup = "stale";
  ASSERT_TRUE(Parse("{\"a\":1,\"b\":2}", &v, &dup).ok());
  EXPECT_EQ(dup, "");
  // The first key whose second occurrence comes first; the last value is kept.
  ASSERT_TRUE(Parse("{\"z\":1,\"y\":2,\"y\":3,\"z\":4}", &v, &dup).ok());
  EXPECT_EQ(dup, "y");
  ASSERT_EQ(v.size(), 2u);
  int64_t i = 0;
  ASSERT_TRUE(v.Find("y")->ToInt64(0, 9, &i));
  EXPECT_EQ(i, 3);
  ASSERT_TRUE(v.Find("z")->ToInt64(0, 9, &i));
  EXPECT_EQ(i, 4);
  // Nested duplicates stay an error even then.
  EXPECT_FALSE(Parse("{\"a\":{\"x\":1,\"x\":2}}", &v, &dup).ok());
}

TEST(JsonValue, HostileInputLimits) {
  // Depth: exactly kMaxJsonDepth levels parse, one more is kBadHeader.
  const std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(MustParse(ok).is_array());
  EXPECT_JSON_ERROR(std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']'),
                    "nested deeper than 64 levels");
  // Far deeper (and unterminated, mixed): stops at the limit, no stack overflow.
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += i % 2 ? "[" : "{\"k\":";
  EXPECT_JSON_ERROR(deep, "nested deeper than 64 levels");
  // Brackets inside strings do not count.
  EXPECT_TRUE(MustParse("[\"" + std::string(1000, '[') + "\"]").is_array());

  // Value count.
  std::string many = "[";
  for (size_t i = 0; i < kMaxJsonValues; ++i) many += i ? ",0" : "0";
  many += "]";  // kMaxJsonValues + 1 values with the array
  JsonValue v;
  Status st = Parse(many, &v);
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded) << st.ToString();
  EXPECT_NE(st.message().find("more than 1048576 values"), std::string::npos) << st.message();
  many.pop_back();
  many.resize(many.size() - 2);
  many += "]";  // exactly kMaxJsonValues
  ASSERT_TRUE(Parse(many, &v).ok());
  EXPECT_EQ(v.size(), kMaxJsonValues - 1);

  // Size.
  std::string big(kMaxJsonBytes + 1, ' ');
  big[0] = '1';
  st = Parse(big, &v);
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded) << st.ToString();
  EXPECT_NE(st.message().find("doc: JSON text is"), std::string::npos) << st.message();

  // Null buffer.
  EXPECT_EQ(ParseJson(nullptr, 3, "doc", &v).code(), ErrorCode::kInvalidArgument);
  // On error *out is untouched.
  JsonValue keep = JsonValue(5);
  EXPECT_FALSE(Parse("[1,", &keep).ok());
  EXPECT_TRUE(keep.is_integer());
}

TEST(JsonValue, BuildAndDump) {
  JsonValue j = JsonValue::Object();
  j.Set("b", 1).Set("a", "x").Set("c", JsonValue::Array().Push(true).Push(nullptr).Push(-3));
  j.Set("a", "y");  // replaces
  EXPECT_EQ(j.Dump(), R"({"a":"y","b":1,"c":[true,null,-3]})");
  EXPECT_EQ(JsonValue::Object().Dump(), "{}");
  EXPECT_EQ(JsonValue::Array().Dump(), "[]");
  EXPECT_EQ(JsonValue(uint64_t{18446744073709551615u}).Dump(), "18446744073709551615");
  EXPECT_EQ(JsonValue(INT64_MIN).Dump(), "-9223372036854775808");
  // Set/Push on the wrong type are no-ops.
  JsonValue n;
  n.Set("a", 1).Push(2);
  EXPECT_TRUE(n.is_null());
  // Strings: escapes like nlohmann, invalid UTF-8 -> U+FFFD.
  EXPECT_EQ(JsonValue("a\"\\\b\f\n\r\t\x01\x1f/\x7f").Dump(),
            "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/\x7f\"");
  EXPECT_EQ(JsonValue("\xC3\xA9\xFFz").Dump(), "\"\xC3\xA9\xEF\xBF\xBDz\"");
  // Non-finite doubles have no JSON spelling.
  EXPECT_EQ(JsonValue(std::numeric_limits<double>::quiet_NaN()).Dump(), "null");
  EXPECT_EQ(JsonValue(-std::numeric_limits<double>::infinity()).Dump(), "null");
}

// Doubles read back exactly, use no more digits than nlohmann's dump()
// (Grisu2) and are laid out the same way (1.0, 0.001, 1e-05, 1.5e+20). They
// are the same text as nlohmann's except where Grisu2 is not the shortest
// (rare): model files written before and after the switch agree.
TEST(JsonValue, DoublesRoundTripAndMatchNlohmann) {
  auto check = [](double d) -> bool {
    const std::string ours = JsonValue(d).Dump();
    const std::string theirs = nlohmann::json(d).dump();
    EXPECT_LE(ours.size(), theirs.size()) << ours << " vs " << theirs;
    JsonValue back;
    EXPECT_TRUE(Parse(ours, &back).ok()) << ours;
    EXPECT_EQ(back.as_double(), d) << ours;
    EXPECT_EQ(std::signbit(back.as_double()), std::signbit(d)) << ours;
    return ours == theirs;
  };
  const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1.0 / 3, 100.0, 1e15, 1e16, 1.5e20,
                          1e-4, 1e-5, 0.001, 123456.789, 5e-324, 1.7976931348623157e308,
                          2.5e-7, 9007199254740993.0, 0.30000000000000004, 0.01, 99.99, 9.5,
                          static_cast<double>(0.1f), -78.645538330078125 /* tie at 16 digits */};
  for (double d : fixed) EXPECT_TRUE(check(d)) << d;
  testing::Rng rng(7);
  int n = 0, same = 0;
  for (int i = 0; i < 5000; ++i) {
    const uint64_t bits = rng.Next();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    uint32_t fbits = static_cast<uint32_t>(rng.Next());
    float f;
    std::memcpy(&f, &fbits, sizeof f);
    for (double v : {d, static_cast<double>(f), static_cast<double>(rng.Uniform() * 100)}) {
      if (!std::isfinite(v)) continue;
      ++n;
      same += check(v);
    }
  }
  EXPECT_GT(same, n * 99 / 100) << same << " of " << n << " identical";
}

// Parsing agrees with nlohmann on valid documents: same structure, same
// numbers, same strings (checked through a canonical re-dump).
TEST(JsonValue, AgreesWithNlohmannOnValidDocuments) {
  const char* docs[] = {
      R"({"graph":{"input":{"h":64,"w":64,"c":3},"nodes":[{"name":"c","op":"conv2d","inputs":["input"],"kernel":[3,3],"pad":[1,1,1,1],"alpha":0.01}],"output":"c"}})",
      R"([1,-2,3.25,-0.0,1e-7,12345678901234567890,"\u00e9\ud83d\ude00\n",true,false,null,{},[]])",
      R"({"z":{"b":[{"y":1,"x":2}],"a":"é"},"":0,"A":1,"a":2,"\u0000":3})",
      "  {\"padded\": 1}        ",
  };
  for (const char* d : docs) {
    JsonValue ours = MustParse(d);
    const nlohmann::json theirs = nlohmann::json::parse(d, nullptr, false);
    ASSERT_FALSE(theirs.is_discarded()) << d;
    EXPECT_EQ(ours.Dump(), theirs.dump()) << d;
  }
}

// Random byte mutations of a model-like document: never crash, and accept
// exactly what nlohmann accepts when no duplicate key is involved (the two
// strict readers agree on the grammar).
TEST(JsonValue, MutationsAgreeWithNlohmann) {
  const std::string base =
      R"({"a":[1,2.5e-3,-7,"s\u00e9\n"],"b":{"c":true,"d":null,"e":"\ud83d\ude00"},"f":0.1})";
  const char kBytes[] = "{}[]\",:.-+eE0159\\u tfnx\xC3\xA9\xFF\x01";
  testing::Rng rng(11);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(rng.Next() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng.Next() % (s.size() + 1);
      const char c = kBytes[rng.Next() % (sizeof kBytes - 1)];
      switch (rng.Next() % 3) {
        case 0: if (pos < s.size()) s[pos] = c; break;
        case 1: s.insert(s.begin() + static_cast<ptrdiff_t>(pos), c); break;
        case 2: if (pos < s.size()) s.erase(pos, 1); break;
      }
    }
    JsonValue ours;
    std::string dup;
    const bool ok = Parse(s, &ours, &dup).ok();
    const nlohmann::json theirs = nlohmann::json::parse(s, nullptr, false);
    if (ok && dup.empty()) {
      ++accepted;
      ASSERT_FALSE(theirs.is_discarded()) << s;
      EXPECT_EQ(ours.Dump(), theirs.dump()) << s;
    } else if (!ok) {
      // nlohmann accepts nested duplicate keys (keeps the last); we do not.
      if (!theirs.is_discarded()) {
        Status st = Parse(s, &ours, &dup);
        EXPECT_NE(st.message().find("duplicate key"), std::string::npos) << s << " " << st.message();
      }
    }
  }
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace flawlens
