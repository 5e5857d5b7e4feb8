// A small strict JSON reader for the export folder's manifest.json, tokenizer.json and contract.json.
// Not JSONSerialization: its number parsing has not always been correctly rounded on every platform,
// and the contract compares float64 values bit for bit (Double(String) rounds correctly). Integers
// that fit become .int, other numbers .double. Mirrors android_demo :core Json.kt.
import Foundation

public struct JsonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public indirect enum JsonValue: Equatable {
    case object([String: JsonValue])
    case array([JsonValue])
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case null
}

public enum Json {
    public static func parse(_ text: String) throws -> JsonValue {
        let reader = Reader(Array(text.utf16))
        reader.skipSpace()
        let value = try reader.value()
        reader.skipSpace()
        if reader.pos != reader.text.count { try reader.fail("trailing characters") }
        return value
    }

    /// Reads UTF-16 code units, so positions in errors count as in the Kotlin port.
    private final class Reader {
        let text: [UInt16]
        var pos = 0

        init(_ text: [UInt16]) { self.text = text }

        func fail(_ what: String) throws -> Never {
            throw JsonError("bad JSON at character \(pos): \(what)")
        }

        /// The code unit at `pos`, nil at the end.
        private var current: UInt16? { pos < text.count ? text[pos] : nil }

        private var atDigit: Bool { (0x30...0x39).contains(current ?? 0) }

        func skipSpace() {
            while pos < text.count, [0x20, 0x09, 0x0D, 0x0A].contains(text[pos]) { pos += 1 }
        }

        func value() throws -> JsonValue {
            if pos >= text.count { try fail("unexpected end") }
            switch text[pos] {
            case 0x7B: return try obj() // {
            case 0x5B: return try array() // [
            case 0x22: return .string(try string()) // "
            case 0x74: return try literal("true", .bool(true))
            case 0x66: return try literal("false", .bool(false))
            case 0x6E: return try literal("null", .null)
            default:
                if current == 0x2D || atDigit { return try number() } // - or a digit
                try fail("unexpected character")
            }
        }

        func literal(_ word: String, _ result: JsonValue) throws -> JsonValue {
            let units = Array(word.utf16)
            if pos + units.count > text.count || Array(text[pos..<pos + units.count]) != units { try fail("expected \(word)") }
            pos += units.count
            return result
        }

        func obj() throws -> JsonValue {
            var out: [String: JsonValue] = [:]
            pos += 1 // {
            skipSpace()
            if current == 0x7D { // }
                pos += 1
                return .object(out)
            }
            while true {
                skipSpace()
                if current != 0x22 { try fail("expected a key") }
                let key = try string()
                skipSpace()
                try expect(0x3A, ":")
                skipSpace()
                out[key] = try value()
                skipSpace()
                if current == 0x2C { // ,
                    pos += 1
                } else {
                    try expect(0x7D, "}")
                    return .object(out)
                }
            }
        }

        func array() throws -> JsonValue {
            var out: [JsonValue] = []
            pos += 1 // [
            skipSpace()
            if current == 0x5D { // ]
                pos += 1
                return .array(out)
            }
            while true {
                skipSpace()
                out.append(try value())
                skipSpace()
                if current == 0x2C { // ,
                    pos += 1
                } else {
                    try expect(0x5D, "]")
                    return .array(out)
                }
            }
        }

        func expect(_ unit: UInt16, _ c: Character) throws {
            if current != unit { try fail("expected '\(c)'") }
            pos += 1
        }

        func string() throws -> String {
            var units: [UInt16] = []
            pos += 1 // opening quote
            while true {
                if pos >= text.count { try fail("unterminated string") }
                let c = text[pos]
                pos += 1
                if c == 0x22 { return String(decoding: units, as: UTF16.self) } // surrogate pairs join here
                if c == 0x5C {
                    units.append(try escape())
                } else if c < 0x20 {
                    try fail("control character in string")
                } else {
                    units.append(c)
                }
            }
        }

        func escape() throws -> UInt16 {
            if pos >= text.count { try fail("unterminated escape") }
            let c = text[pos]
            pos += 1
            switch c {
            case 0x22, 0x5C, 0x2F: return c // " \ /
            case 0x62: return 0x08 // b
            case 0x66: return 0x0C // f
            case 0x6E: return 0x0A // n
            case 0x72: return 0x0D // r
            case 0x74: return 0x09 // t
            case 0x75: // u
                if pos + 4 > text.count { try fail("short \\u escape") }
                guard let code = UInt16(String(decoding: text[pos..<pos + 4], as: UTF16.self), radix: 16) else {
                    try fail("bad \\u escape")
                }
                pos += 4
                return code
            default:
                try fail("bad escape")
            }
        }

        func number() throws -> JsonValue {
            let start = pos
            if current == 0x2D { pos += 1 } // -
            while atDigit { pos += 1 }
            var integral = true
            if current == 0x2E { // .
                integral = false
                pos += 1
                while atDigit { pos += 1 }
            }
            if current == 0x65 || current == 0x45 { // e E
                integral = false
                pos += 1
                if current == 0x2B || current == 0x2D { pos += 1 } // + -
                while atDigit { pos += 1 }
            }
            let literal = String(decoding: text[start..<pos], as: UTF16.self)
            if literal == "-" || literal.hasSuffix(".") || "eE+-".contains(literal.last!) { try fail("bad number \(literal)") }
            if integral, let n = Int64(literal) { return .int(n) }
            guard let d = Double(literal) else { try fail("bad number \(literal)") }
            return .double(d)
        }
    }
}

// Typed access with errors that name the key, for files a person may have edited by hand.

extension JsonValue {
    public func asObject(_ what: String) throws -> [String: JsonValue] {
        guard case .object(let o) = self else { throw JsonError("\(what): expected a JSON object") }
        return o
    }

    public func asList(_ what: String) throws -> [JsonValue] {
        guard case .array(let a) = self else { throw JsonError("\(what): expected a JSON array") }
        return a
    }

    public func asString(_ what: String) throws -> String {
        guard case .string(let s) = self else { throw JsonError("\(what): expected a string") }
        return s
    }

    public func asDouble(_ what: String) throws -> Double {
        switch self {
        case .int(let n): return Double(n)
        case .double(let d): return d
        default: throw JsonError("\(what): expected a number")
        }
    }

    public func asInt(_ what: String) throws -> Int {
        guard case .int(let n) = self else { throw JsonError("\(what): expected an integer") }
        guard let i = Int32(exactly: n) else { throw JsonError("\(what): \(n) does not fit an Int") }
        return Int(i)
    }

    public func asBoolean(_ what: String) throws -> Bool {
        guard case .bool(let b) = self else { throw JsonError("\(what): expected true or false") }
        return b
    }
}

extension Dictionary where Key == String, Value == JsonValue {
    public func field(_ key: String, _ what: String) throws -> JsonValue {
        guard let v = self[key] else { throw JsonError("\(what): missing \"\(key)\"") }
        return v
    }
}

extension JsonValue {
    public func asIntArray(_ what: String) throws -> [Int] {
        try asList(what).enumerated().map { try $0.element.asInt("\(what)[\($0.offset)]") }
    }

    public func asLongArray(_ what: String) throws -> [Int64] {
        try asList(what).enumerated().map {
            guard case .int(let n) = $0.element else { throw JsonError("\(what)[\($0.offset)]: expected an integer") }
            return n
        }
    }

    public func asDoubleArray(_ what: String) throws -> [Double] {
        try asList(what).enumerated().map { try $0.element.asDouble("\(what)[\($0.offset)]") }
    }
}
