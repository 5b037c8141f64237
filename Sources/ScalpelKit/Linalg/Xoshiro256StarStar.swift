import Foundation

/// The xoshiro256** generator (Blackman & Vigna), its state filled from the seed by splitmix64.
///
/// The stream depends only on the seed (no global state, no threads), so everything drawn from it is
/// reproducible. Not cryptographic.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix64() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix64()
        s1 = splitmix64()
        s2 = splitmix64()
        s3 = splitmix64()
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// Fills `out` with standard normal samples (mean 0, variance 1) by the Box–Muller transform,
    /// computed in Double and rounded to Float: each pair of values uses two draws,
    /// u1 in (0, 1] and u2 in [0, 1), giving `r cos(2 pi u2)` then `r sin(2 pi u2)` with
    /// `r = sqrt(-2 ln u1)`. An odd count drops the last sine.
    public mutating func fillStandardNormal(_ out: UnsafeMutableBufferPointer<Float>) {
        var i = 0
        while i < out.count {
            let u1 = (Double(next() >> 11) + 1) * 0x1p-53
            let u2 = Double(next() >> 11) * 0x1p-53
            let r = (-2 * Foundation.log(u1)).squareRoot()
            let theta = 2 * Double.pi * u2
            out[i] = Float(r * Foundation.cos(theta))
            if i + 1 < out.count { out[i + 1] = Float(r * Foundation.sin(theta)) }
            i += 2
        }
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}

extension Matrix {
    /// A `rows x cols` matrix of independent standard normal samples drawn row by row from
    /// `Xoshiro256StarStar(seed:)`: the same seed always gives the same bytes.
    public static func standardNormal(rows: Int, cols: Int, seed: UInt64) -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        var generator = Xoshiro256StarStar(seed: seed)
        m.values.withUnsafeMutableBufferPointer { generator.fillStandardNormal($0) }
        return m
    }
}
