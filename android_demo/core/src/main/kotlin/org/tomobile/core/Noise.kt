// tomobile's portable standard-normal generator (docs/contract.md, "The generator"): the same float64
// normals, to the bit, as runtime/noise.py, from IEEE-754 double + - * / and sqrt only.
// Mirrors web_demo/core/noise.js and ios_demo TomobileCore/Noise.swift (same names, same order).
package org.tomobile.core

private val GAMMA = 0x9E3779B97F4A7C15uL.toLong() // wrapping Long arithmetic = arithmetic mod 2^64
private val MIX1 = 0xBF58476D1CE4E5B9uL.toLong()
private val MIX2 = 0x94D049BB133111EBuL.toLong()
private const val SQRT2 = 1.4142135623730951
private const val LN2 = 0.6931471805599453
private const val LN_TERMS = 40
private const val TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0 // 2^-53, exact

/** A seed as an unsigned 64-bit integer from its decimal text ("0" .. "18446744073709551615"). */
fun parseSeed(text: String): ULong =
    text.trim().toULongOrNull()
        ?: throw IllegalArgumentException("seed must be an integer in 0..2^64-1, got \"$text\"")

/** One SplitMix64 step: (next state, output), all mod 2^64 (Kotlin's Long arithmetic wraps). */
fun splitMix64(state: ULong): Pair<ULong, ULong> {
    val next = state.toLong() + GAMMA
    var z = next
    z = (z xor (z ushr 30)) * MIX1
    z = (z xor (z ushr 27)) * MIX2
    return Pair(next.toULong(), (z xor (z ushr 31)).toULong())
}

/** ln(s) for a positive normal double s, from + - * / only, in the contract's evaluation order. */
fun portableLog(s: Double): Double {
    val bits = java.lang.Double.doubleToRawLongBits(s)
    var e = ((bits ushr 52) and 0x7ffL).toInt() - 1023
    var m = java.lang.Double.longBitsToDouble((bits and 0x000fffffffffffffL) or (1023L shl 52)) // in [1, 2)
    if (m > SQRT2) {
        m = m / 2.0
        e = e + 1
    }
    val z = (m - 1.0) / (m + 1.0)
    val z2 = z * z
    var acc = 0.0
    var t = z
    for (k in 0 until LN_TERMS) {
        acc = acc + t / (2 * k + 1).toDouble()
        t = t * z2
    }
    return 2.0 * acc + e.toDouble() * LN2
}

/** The stream of one seed: SplitMix64 -> uniforms in [0, 1) -> Marsaglia polar normals. */
class PortableRandom(seed: ULong) {
    private var state: ULong = seed
    private var spare: Double? = null // the second normal of a polar pair, emitted next

    fun nextU64(): ULong {
        val (next, out) = splitMix64(state)
        state = next
        return out
    }

    /** (next() >> 11) * 2^-53: the top 53 bits, exactly representable. */
    fun nextUniform(): Double = (nextU64() shr 11).toLong().toDouble() * TWO_POW_MINUS_53

    fun nextNormal(): Double {
        spare?.let {
            spare = null
            return it
        }
        while (true) {
            val x = 2.0 * nextUniform() - 1.0
            val y = 2.0 * nextUniform() - 1.0
            val s = x * x + y * y
            if (s == 0.0 || s >= 1.0) continue
            val f = Math.sqrt(-2.0 * portableLog(s) / s)
            spare = y * f
            return x * f
        }
    }
}

/** The first `count` float64 normals of the stream for `seed`. */
fun standardNormals(seed: ULong, count: Int): DoubleArray {
    val rng = PortableRandom(seed)
    return DoubleArray(count) { rng.nextNormal() }
}

/** Initial latent for `seed` and `shape` (e.g. [1, 3, 8, 32, 32]): normals in C order, rounded to float32. */
fun latentNoise(shape: IntArray, seed: ULong): FloatArray {
    val normals = standardNormals(seed, shape.fold(1) { a, b -> a * b })
    return FloatArray(normals.size) { normals[it].toFloat() } // round to nearest even, as numpy's astype
}
