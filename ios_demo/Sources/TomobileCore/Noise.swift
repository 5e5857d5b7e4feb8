// tomobile's portable standard-normal generator (docs/contract.md, "The generator"): the same float64
// normals, to the bit, as runtime/noise.py, from IEEE-754 double + - * / and sqrt only.
// Mirrors android_demo :core Noise.kt function by function (same names, same order) and web_demo/core/noise.js.
import Foundation

private let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15 // &+ and &* wrap: arithmetic mod 2^64
private let mix1: UInt64 = 0xBF58_476D_1CE4_E5B9
private let mix2: UInt64 = 0x94D0_49BB_1331_11EB
private let sqrt2 = 1.4142135623730951
private let ln2 = 0.6931471805599453
private let lnTerms = 40
private let twoPowMinus53 = 1.0 / 9_007_199_254_740_992.0 // 2^-53, exact

/// A value outside what a function accepts (Kotlin: IllegalArgumentException); the message says what is allowed.
public struct InvalidArgument: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A seed as an unsigned 64-bit integer from its decimal text ("0" ... "18446744073709551615").
public func parseSeed(_ text: String) throws -> UInt64 {
    guard let seed = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw InvalidArgument("seed must be an integer in 0..2^64-1, got \"\(text)\"")
    }
    return seed
}

/// One SplitMix64 step: (next state, output), all mod 2^64.
public func splitMix64(_ state: UInt64) -> (UInt64, UInt64) {
    let next = state &+ gamma
    var z = next
    z = (z ^ (z >> 30)) &* mix1
    z = (z ^ (z >> 27)) &* mix2
    return (next, z ^ (z >> 31))
}

/// ln(s) for a positive normal double s, from + - * / only, in the contract's evaluation order.
public func portableLog(_ s: Double) -> Double {
    let bits = s.bitPattern
    var e = Int((bits >> 52) & 0x7ff) - 1023
    var m = Double(bitPattern: (bits & 0x000f_ffff_ffff_ffff) | (UInt64(1023) << 52)) // in [1, 2)
    if m > sqrt2 {
        m = m / 2.0
        e = e + 1
    }
    let z = (m - 1.0) / (m + 1.0)
    let z2 = z * z
    var acc = 0.0
    var t = z
    for k in 0..<lnTerms {
        acc = acc + t / Double(2 * k + 1)
        t = t * z2
    }
    return 2.0 * acc + Double(e) * ln2
}

/// The stream of one seed: SplitMix64 -> uniforms in [0, 1) -> Marsaglia polar normals.
public final class PortableRandom {
    private var state: UInt64
    private var spare: Double? // the second normal of a polar pair, emitted next

    public init(_ seed: UInt64) {
        state = seed
    }

    public func nextU64() -> UInt64 {
        let (next, out) = splitMix64(state)
        state = next
        return out
    }

    /// (next() >> 11) * 2^-53: the top 53 bits, exactly representable.
    public func nextUniform() -> Double {
        Double(nextU64() >> 11) * twoPowMinus53
    }

    public func nextNormal() -> Double {
        if let y = spare {
            spare = nil
            return y
        }
        while true {
            let x = 2.0 * nextUniform() - 1.0
            let y = 2.0 * nextUniform() - 1.0
            let s = x * x + y * y
            if s == 0.0 || s >= 1.0 { continue }
            let f = (-2.0 * portableLog(s) / s).squareRoot()
            spare = y * f
            return x * f
        }
    }
}

/// The first `count` float64 normals of the stream for `seed`.
public func standardNormals(_ seed: UInt64, _ count: Int) -> [Double] {
    let rng = PortableRandom(seed)
    return (0..<count).map { _ in rng.nextNormal() }
}

/// Initial latent for `seed` and `shape` (e.g. [1, 3, 8, 32, 32]): normals in C order, rounded to float32.
public func latentNoise(_ shape: [Int], _ seed: UInt64) -> [Float] {
    standardNormals(seed, shape.reduce(1, *)).map { Float($0) } // round to nearest even, as numpy's astype
}
