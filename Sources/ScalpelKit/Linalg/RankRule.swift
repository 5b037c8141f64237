/// How many singular triplets to keep. Energies are summed in Double from the f32 singular values.
public enum RankRule: Sendable, Equatable {
    /// Exactly this rank (>= 1).
    case fixed(Int)
    /// The smallest k whose singular values keep at least this fraction of the energy:
    /// `sum_{i<=k} s_i^2 >= fraction * ||A||_F^2`, fraction in (0, 1].
    case energy(Double)
    /// The smallest k whose relative Frobenius error is at most this target:
    /// `sqrt(||A||_F^2 - sum_{i<=k} s_i^2) / ||A||_F <= target`, target in [0, 1).
    /// (Equivalent to `energy(1 - target^2)`.)
    case maxError(Double)

    /// Throws `ScalpelError.invalid` when the parameter is outside the range stated on its case.
    public func validate() throws {
        let valid: Bool
        switch self {
        case .fixed(let k): valid = k >= 1
        case .energy(let fraction): valid = fraction > 0 && fraction <= 1
        case .maxError(let target): valid = target >= 0 && target < 1
        }
        guard valid else {
            throw ScalpelError.invalid(file: nil, tensor: nil, reason: "invalid rank rule \(self)")
        }
    }

    /// The smallest k in 1...singularValues.count that satisfies the rule, or nil when none does.
    /// `singularValues` must be non-increasing; `frobeniusNormSquared` is `||A||_F^2` of the whole
    /// matrix. For A = 0 every rule but `fixed` is met by k = 1.
    public func smallestRank(singularValues s: [Float], frobeniusNormSquared total: Double) -> Int? {
        let required: Double  // energy the first k values must reach
        switch self {
        case .fixed(let k): return k <= s.count ? k : nil
        case .energy(let fraction): required = fraction * total
        case .maxError(let target): required = total - target * target * total
        }
        var kept = 0.0
        for (i, value) in s.enumerated() {
            kept += Double(value) * Double(value)
            if kept >= required { return i + 1 }
        }
        return nil
    }

    /// `smallestRank`, or every available value when none satisfies the rule, capped at `maxRank`:
    /// `min(smallestRank ?? s.count, maxRank, s.count)`, at least 1 when `s` is not empty.
    public func rank(singularValues s: [Float], frobeniusNormSquared total: Double, maxRank: Int) -> Int {
        let k = smallestRank(singularValues: s, frobeniusNormSquared: total) ?? s.count
        return min(s.count, max(1, min(k, maxRank)))
    }
}
